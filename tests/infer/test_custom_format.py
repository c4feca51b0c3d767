"""--format custom: user delimiters of several tokens each; the cap and the Waits are exact, as on
s1/r1 (scripted tiny model, char tokenizer: '[/T]' is four tokens)."""

from __future__ import annotations

import pytest

from tests.infer.test_engine import Scripted
from thinkscale import ThinkscaleError
from thinkscale.formats import custom_format, get_format
from thinkscale.infer.engines import Request, SamplingConfig
from thinkscale.infer.forcing import Budget, ForcingTokens
from thinkscale.infer.hf_engine import HFEngine

FMT = custom_format("[T]", "[/T]", "Ans: ")


def ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def script(tokenizer, end_after_x: bool) -> dict[int, int]:
    x, = ids(tokenizer, "x")
    everything = {i: x for i in range(len(tokenizer))}
    if not end_after_x:
        return everything
    lb, sl, t, rb = ids(tokenizer, "[/T]")
    w, a = ids(tokenizer, "Wa")
    # x -> '[' -> '/' -> 'T' -> ']' : the model writes the whole end delimiter after each x
    return {**everything, x: lb, lb: sl, sl: t, t: rb, w: a}


def run(model, tokenizer, budget):
    tokens = ForcingTokens.from_tokenizer(tokenizer, FMT, wait="Wait")
    prompt = ids(tokenizer, FMT.render_prompt(tokenizer, "q?"))
    eng = HFEngine(model, tokens, batch_size=2)
    (fin,) = list(eng.run([Request("q", prompt, budget)], SamplingConfig()))
    return fin.state, tokenizer.decode(fin.state.generated)


def test_delimiters_are_several_tokens(tokenizer):
    tokens = ForcingTokens.from_tokenizer(tokenizer, FMT)
    assert len(tokens.end_think) == 4 and tokenizer.decode(list(tokens.answer)) == "[/T]\nAns:"


@pytest.mark.parametrize("cap", [1, 5, 12])
def test_cap_is_exact_with_multi_token_delimiters(tiny_model, tokenizer, cap):
    model = Scripted(tiny_model, script(tokenizer, end_after_x=False))
    state, text = run(model, tokenizer, Budget(cap, max_answer_tokens=3))
    assert state.thinking_tokens == cap and state.capped
    thinking, answer = FMT.split(text)
    assert thinking == "x" * cap and "[/T]\nAns:" in text


@pytest.mark.parametrize("k", [0, 1, 3])
def test_waits_are_exact_with_multi_token_delimiters(tiny_model, tokenizer, k):
    model = Scripted(tiny_model, script(tokenizer, end_after_x=True))
    state, text = run(model, tokenizer, Budget(None, num_ignore=k, max_answer_tokens=3, max_total_tokens=200))
    thinking, _ = FMT.split(text)
    assert state.waits == k and thinking.count("Wait") == k
    assert "[/T]" not in thinking  # each ignored end left no part of the delimiter behind
    assert not state.capped and text.count("[/T]") == 1


def test_custom_format_needs_both_delimiters():
    with pytest.raises(ThinkscaleError, match="--think-start and --think-end"):
        get_format("custom", think_start="<r>")
    with pytest.raises(ThinkscaleError, match="define --format custom"):
        get_format("s1", think_end="</r>")
    assert FMT.label == 'custom ["[T]", "[/T]", "Ans: "]'
