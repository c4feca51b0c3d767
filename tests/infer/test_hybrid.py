"""A hybrid model in the engine (Thinkless): the first token of the turn chooses the mode, or the
prompt forces one; budget forcing (cap, Wait, minimum) acts in think mode only and stays exact.

The tiny random Llama gets the three control tokens (mean-initialised rows) and a script that
makes its next token a function of the current one: the prompt's last character picks the mode
('a' -> <think>, 'b' -> <short>, 'c' -> a plain answer), so one batch mixes all three."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import make_model, make_tokenizer
from tests.infer.test_engine import Scripted, naive
from thinkscale.formats import get_format
from thinkscale.infer.engines import Request, SamplingConfig
from thinkscale.infer.forcing import Budget, ForcingTokens
from thinkscale.infer.hf_engine import HFEngine
from thinkscale.models import add_format_tokens, init_new_embeddings

HYBRID = get_format("hybrid")


@pytest.fixture(scope="module")
def hybrid():
    tok = make_tokenizer()
    model = make_model(len(tok))
    init_new_embeddings(model, tok, add_format_tokens(tok, HYBRID.added_tokens))
    return model, tok


def ids(tok, text):
    return tok.encode(text, add_special_tokens=False)


def script(tok, end_thinking: bool) -> dict[int, int]:
    a, b, c, x, w, nl, colon, five, seven = (ids(tok, ch)[0] for ch in "abcxW\n:57")
    eos = tok.eos_token_id
    think, end, short = (tok.convert_tokens_to_ids(t) for t in ("<think>", "</think>", "<short>"))
    return {a: think, b: short, c: seven, nl: x, x: end if end_thinking else x, w: x, colon: five,
            five: eos, seven: eos}  # fmt: skip


def run(model, tok, requests, batch_size=4, wait="W"):
    eng = HFEngine(model, ForcingTokens.from_tokenizer(tok, HYBRID, wait=wait), batch_size=batch_size)
    return {f.request.key: f.state for f in eng.run(requests, SamplingConfig())}


def prompt(tok, last: str, mode: str = "auto"):
    return ids(tok, HYBRID.render_prompt(tok, "q") + last + HYBRID.mode_start(mode))


def test_auto_mode_records_what_the_model_chose(hybrid):
    model, tok = hybrid
    m = Scripted(model, script(tok, end_thinking=True))
    states = run(m, tok, [Request(ch, prompt(tok, ch), Budget(16, max_answer_tokens=4, mode="auto")) for ch in "abc"])
    think, short, none = states["a"], states["b"], states["c"]
    assert think.mode == "think" and short.mode == "short" and none.mode == "none"
    # <think>, its forced newline, one thinking token, then the model's own </think>
    assert tok.decode(think.generated).startswith("<think>\nx</think>\n\nFinal Answer:5")
    assert think.forced[:2] == [False, True] and think.thinking_tokens == 1 and not think.capped
    assert tok.decode(short.generated[:2]) == "<short>\n" and short.thinking_tokens == 0
    assert tok.decode(none.generated) == "7" and none.thinking_tokens == 0 and none.finish_reason == "stop"
    assert HYBRID.split(tok.decode(think.generated), think.mode) == ("x", "Final Answer:5")
    assert HYBRID.split(tok.decode(none.generated), none.mode) == ("", "7")


def test_forced_modes_override_the_model(hybrid):
    model, tok = hybrid
    m = Scripted(model, script(tok, end_thinking=False))  # would never stop thinking
    states = run(m, tok, [Request((ch, mode), prompt(tok, ch, mode), Budget(6, max_answer_tokens=3, mode=mode))
                          for ch in "abc" for mode in ("think", "short")])  # fmt: skip
    for ch in "abc":
        st = states[(ch, "think")]
        assert st.mode == "think" and st.thinking_tokens == 6 and st.capped  # the cap is exact
        st = states[(ch, "short")]
        assert st.mode == "short" and st.thinking_tokens == 0 and not st.capped and st.answer_tokens <= 3


@pytest.mark.parametrize("cap", [1, 5, 9])
def test_cap_and_waits_apply_in_think_mode_only(hybrid, cap):
    model, tok = hybrid
    never = Scripted(model, script(tok, end_thinking=False))
    states = run(never, tok, [Request(ch, prompt(tok, ch), Budget(cap, num_ignore=2, max_answer_tokens=3, mode="auto"))
                              for ch in "abc"])  # fmt: skip
    assert states["a"].thinking_tokens == cap and states["a"].capped  # control token + newline not counted
    for ch in "bc":  # no thinking: nothing to cap, no Wait
        assert states[ch].thinking_tokens == 0 and not states[ch].capped and states[ch].waits == 0
    ends = Scripted(model, script(tok, end_thinking=True))
    states = run(ends, tok, [Request(ch, prompt(tok, ch), Budget(None, num_ignore=2, max_answer_tokens=3, mode="auto"))
                             for ch in "abc"])  # fmt: skip
    st = states["a"]
    assert st.waits == 2 and tok.decode(st.generated).startswith("<think>\nxWxWx</think>")
    assert [states[ch].waits for ch in "bc"] == [0, 0]


def test_minimum_thinking_in_think_mode(hybrid):
    model, tok = hybrid
    m = Scripted(model, script(tok, end_thinking=True))
    states = run(m, tok, [Request("a", prompt(tok, "a"), Budget(None, min_thinking_tokens=5, max_answer_tokens=3,
                                                                 mode="auto"))])  # fmt: skip
    assert states["a"].thinking_tokens >= 5 and states["a"].mode == "think"


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_engine_equals_the_no_cache_reference_in_any_batch_layout(hybrid, batch_size):
    model, tok = hybrid
    m = Scripted(model, script(tok, end_thinking=True))
    requests = [Request((ch, mode, cap), prompt(tok, ch, mode), Budget(cap, num_ignore=1, max_answer_tokens=3, mode=mode))
                for ch in "abc" for mode in ("auto", "think", "short") for cap in (2, None)]  # fmt: skip
    tokens = ForcingTokens.from_tokenizer(tok, HYBRID, wait="W")
    got = run(m, tok, requests, batch_size=batch_size)
    for r in requests:
        ref = naive(m, tokens, r)
        st = got[r.key]
        assert (st.generated, st.forced, st.mode, st.thinking_tokens, st.waits, st.capped) == (
            ref.generated, ref.forced, ref.mode, ref.thinking_tokens, ref.waits, ref.capped), r.key


def test_records_carry_the_mode_and_runs_of_every_mode_share_a_file(hybrid, tmp_path):
    from thinkscale.eval.evaluate import evaluate
    from thinkscale.infer.generate import GenerateConfig, generate
    from thinkscale.records import load_records, record_key
    from thinkscale.tasks import QuestionsTask

    model, tok = hybrid
    tok = copy.deepcopy(tok)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # the prompt ends with the question
    m = Scripted(model, script(tok, end_thinking=True))
    # questions ending in a / b / c pick think / short / none under auto
    task = QuestionsTask(["qa", "qb", "qc"], golds=["5", "7", "7"], name="mix", grader="numeric")
    cfg = GenerateConfig(task="mix", format="hybrid", modes=["auto", "think", "short"], budgets=[8],
                         max_answer_tokens=3, dtype="float32")  # fmt: skip
    out = tmp_path / "r.jsonl"
    generate(cfg, out, model=m, tokenizer=tok, task=task, progress=False)
    recs = load_records(out)
    assert len(recs) == 9 and len({record_key(r) for r in recs}) == 9
    auto = {r["id"]: r for r in recs if r["requested_mode"] == "auto"}
    assert [auto[f"mix-{i}"]["mode"] for i in range(3)] == ["think", "short", "none"]
    assert auto["mix-0"]["thinking"] == "x" and auto["mix-0"]["correct"] is True
    assert {r["mode"] for r in recs if r["requested_mode"] == "short"} == {"short"}
    # a rerun has nothing to do; eval splits the runs by requested mode
    generate(cfg, out, model=m, tokenizer=tok, task=task, progress=False)
    assert len(load_records(out)) == 9
    metrics = evaluate(load_records(out))
    runs = {r["requested_mode"]: r for r in metrics["runs"]}
    assert set(runs) == {"auto", "think", "short"}
    assert runs["auto"]["think_share"] == pytest.approx(1 / 3) and runs["think"]["think_share"] == 1.0
    assert runs["short"]["think_share"] == 0.0
    assert runs["auto"]["by_mode"]["none"]["samples"] == 1
    assert metrics["tasks"]["mix"]["think_share"] == pytest.approx(1 / 3)  # of the runs where it chose


def test_token_events_name_the_control_token_phase(hybrid):
    model, tok = hybrid
    m = Scripted(model, script(tok, end_thinking=True))
    events = []
    eng = HFEngine(m, ForcingTokens.from_tokenizer(tok, HYBRID, wait="W"), batch_size=2)
    list(eng.run([Request("a", prompt(tok, "a"), Budget(8, max_answer_tokens=3, mode="auto"))], SamplingConfig(),
                 on_token=events.append))  # fmt: skip
    assert events[0].phase == "mode" and tok.decode([events[0].token]) == "<think>"
    assert [e.phase for e in events[2:3]] == ["think"]


def test_sampling_is_seeded_per_row(hybrid):
    model, tok = hybrid
    req = lambda: [Request("a", prompt(tok, "q"), Budget(6, max_answer_tokens=3, mode="auto"), samples=[0, 1],  # noqa: E731
                           seeds=[1, 2])]  # fmt: skip
    eng = HFEngine(model, ForcingTokens.from_tokenizer(tok, HYBRID), batch_size=2)
    first = [(f.state.generated, f.state.mode) for f in eng.run(req(), SamplingConfig(temperature=1.0))]
    again = [(f.state.generated, f.state.mode) for f in eng.run(req(), SamplingConfig(temperature=1.0))]
    assert first == again  # the same seeds, the same modes and tokens
    assert all(mode in ("think", "short", "none") for _, mode in first)
