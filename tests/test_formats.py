import pytest

from thinkscale import ThinkscaleError
from thinkscale.formats import FormatConfig, get_format


def test_s1_round_trip(tokenizer):
    fmt = get_format("s1")
    prompt = fmt.render_prompt(tokenizer, "1+1?")
    assert prompt.endswith("<|im_start|>assistant\n<|im_start|>think\n")
    turn = fmt.render_assistant("one plus one", "2")
    assert turn == "<|im_start|>think\none plus one\n<|im_start|>answer\nAnswer: 2"
    assert fmt.split(turn) == ("one plus one", "Answer: 2")
    # a generation starts after the think prefix, and the cap forces the answer delimiter
    assert fmt.split("two\n" + fmt.forced_answer() + " 2") == ("two", "Final Answer: 2")


def test_r1_and_plain():
    r1 = get_format("r1")
    assert r1.render_assistant("t", "a") == "<think>\nt\n</think>\n\na"
    assert r1.split("t\n</think>\n\na") == ("t", "a")
    assert r1.split("t</think>a") == ("t", "a")
    assert r1.split("never ends") == ("never ends", "")
    plain = get_format("plain")
    assert not plain.thinks and plain.split(" 42 ") == ("", "42")


def test_unknown_format():
    with pytest.raises(ThinkscaleError, match="unknown format"):
        get_format("nope")


def test_checked_modes_is_the_one_mode_check():
    """generate's --mode list and the batch files' single --mode go through it."""
    fmt, modes = FormatConfig(format="hybrid").checked_modes(None)
    assert fmt.hybrid and modes == ["auto"]
    assert FormatConfig(format="hybrid").checked_modes(["short", "think"])[1] == ["short", "think"]
    assert FormatConfig(format="s1").checked_modes(None)[1] is None
    with pytest.raises(ThinkscaleError, match="--mode applies to --format hybrid"):
        FormatConfig(format="s1").checked_modes(["think"])
    for bad, shown in ((["thinking"], "thinking"), ([], "nothing")):
        with pytest.raises(ThinkscaleError, match=f"--mode must be one of auto, think, short, got {shown}"):
            FormatConfig(format="hybrid").checked_modes(bad)
