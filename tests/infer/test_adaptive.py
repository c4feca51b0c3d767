"""Adaptive thinking: probes branched off a row inside the one decode pass.

On a scripted tiny model the tests know exactly when probes fire and what they answer; on the
free random model (float64) every probe's tokens and probabilities must equal a no-cache
recompute of the same prefix, and the row's own output must not change, whatever the batch.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

from tests.infer.test_engine import (
    ANSWER,
    END,
    END_AFTER_X,
    NEVER_END,
    NL,
    WAIT,
    Scripted,
    forcing_tokens,
    prompt,
    run,
)
from thinkscale.infer.adaptive import AdaptiveRule, Probe, settled
from thinkscale.infer.engines import Request, SamplingConfig
from thinkscale.infer.forcing import Budget, RowState
from thinkscale.infer.hf_engine import HFEngine


def constant(answer: str | None, hesitant: bool = False):
    return lambda ids: (answer, hesitant)


def scripted_answers(*answers):
    """A reader that answers from a list, probe after probe (then repeats the last)."""
    seq = iter(answers)
    last = [None]

    def read(ids):
        last[0] = next(seq, last[0])
        return last[0]

    return read


@torch.no_grad()
def naive(model, tokens, request: Request) -> RowState:
    """Reference: no cache, the whole context recomputed each step (probes included), greedy."""
    state = RowState(tokens, request.budget)
    while not state.done:
        ids = torch.tensor([request.prompt_ids + state.generated + state.probe_context()])
        logits = model(input_ids=ids).logits[0, -1].clone()
        forced, prob = state.forced_next(), None
        if forced is None and state.probing:
            p = logits.softmax(-1)
            token = int(p.argmax())
            prob = float(p[token])
        elif forced is None:
            banned = state.banned()
            if banned:
                logits[list(banned)] = float("-inf")
            token = int(logits.argmax())
        else:
            token = forced
        state.step(token, prob)
    return state


def budget(cap=50, **rule) -> Budget:
    return Budget(cap, max_answer_tokens=4, adaptive=AdaptiveRule(**{"kind": "consistency", **rule}))


def one(model, b: Budget, tokens=None, i: int = 3) -> RowState:
    states, _ = run(model, tokens or forcing_tokens(), [Request("q", prompt(i), b)])
    return states[("q", 0)]


def test_probes_fire_exactly_every_k_thinking_tokens_and_change_nothing(tiny_model):
    model = Scripted(tiny_model, NEVER_END)
    plain = one(model, Budget(50, max_answer_tokens=4))
    st = one(model, budget(50, every=8, tokens=3, agree=10**6, read=constant("7")))
    assert [p.at for p in st.probes] == [8, 16, 24, 32, 40, 48]
    assert st.generated == plain.generated and st.forced == plain.forced  # the row never saw them
    assert st.thinking_tokens == 50 and st.capped and st.stopped_by == "cap"
    for p in st.probes:  # [newline] + the forced answer text, then 3 greedy answer tokens
        assert p.ids[: p.forced] == [NL, *ANSWER] and p.answer_ids == [36, 36, 36]
    assert st.probe_tokens == sum(len(p.ids) for p in st.probes) == 6 * (1 + len(ANSWER) + 3)


def test_agree_three_stops_after_the_third_equal_answer_and_not_before(tiny_model):
    model = Scripted(tiny_model, NEVER_END)
    plain = one(model, Budget(200, max_answer_tokens=4))
    cases = [
        (constant("7"), 3),  # the third probe is the third equal answer
        (scripted_answers(("1", False), ("2", False), ("2", False), ("2", False)), 4),
        (scripted_answers(("5", False), ("5", False), (None, False), ("5", False), ("5", False), ("5", False)), 6),
        (scripted_answers(("3", False), ("3", False), ("3", True), ("3", False)), 4),  # a hesitant probe
    ]
    for read, stop_at in cases:
        st = one(model, budget(200, every=8, tokens=2, agree=3, read=read))
        assert len(st.probes) == stop_at, read
        assert st.stopped_by == "adaptive" and not st.capped
        assert st.thinking_tokens == 8 * stop_at
        assert st.thinking_ids() == plain.generated[: 8 * stop_at]
        # thinking ends as a cap would end it: [newline] + delimiter + answer prefix, forced
        end = 8 * stop_at
        assert st.generated[end : end + 1 + len(ANSWER)] == [NL, *ANSWER]
        assert all(st.forced[end : end + 1 + len(ANSWER)])
        assert st.answer_tokens == 4


def test_confidence_stops_on_a_sure_answer_only(tiny_model):
    sure = Scripted(tiny_model, NEVER_END)  # +1000 on the scripted token: probability ~1
    st = one(sure, budget(200, kind="confidence", every=8, tokens=2, read=constant("7")))
    assert len(st.probes) == 1 and st.probes[0].confidence > 0.99 and st.stopped_by == "adaptive"
    unsure = one(tiny_model, budget(40, kind="confidence", every=8, tokens=2, read=constant("7")))
    assert unsure.probes and all(p.confidence < 0.5 for p in unsure.probes)  # a random model
    assert unsure.stopped_by in ("cap", "model")


def test_confidence_also_probes_where_the_model_starts_a_wait(tiny_model):
    # x x x x W x x ...: the model writes 'W' (the wait token) itself every fifth token
    script = {**{i: 36 for i in range(103)}, 36: 37, 37: 38, 38: 39, 39: WAIT, WAIT: 36}
    model = Scripted(tiny_model, script)
    st = one(model, budget(30, kind="confidence", every=64, tokens=2, confidence=1.01, read=constant("7")))
    assert [p.at for p in st.probes] == [4, 9, 14, 19, 24, 29]  # before each W the model proposed
    assert st.thinking_ids() == one(model, Budget(30, max_answer_tokens=4)).thinking_ids()


def test_waits_come_before_the_first_allowed_adaptive_end(tiny_model):
    # x, END (ignored -> W), W -> 37, 37 -> x, ...: thinking x W 7 x W 7 x END
    model = Scripted(tiny_model, END_AFTER_X)
    plain = one(model, Budget(None, num_ignore=2, max_answer_tokens=4, max_total_tokens=60))
    st = one(model, Budget(None, num_ignore=2, max_answer_tokens=4, max_total_tokens=60,
                           adaptive=AdaptiveRule("consistency", every=2, tokens=2, agree=1, read=constant("7"))))  # fmt: skip
    assert st.waits == 2 and st.stopped_by == "adaptive"
    # probes at 2 and 4 were settled but not allowed (Waits left); the one at 6 ends thinking
    assert [p.at for p in st.probes] == [2, 4, 6] and st.thinking_tokens == 6
    assert st.thinking_ids() == plain.thinking_ids()[:6]
    min_st = one(Scripted(tiny_model, NEVER_END), Budget(None, min_thinking_tokens=5, max_answer_tokens=4,
                 adaptive=AdaptiveRule("consistency", every=2, tokens=2, agree=1, read=constant("7"))))  # fmt: skip
    assert [p.at for p in min_st.probes] == [2, 4, 6] and min_st.thinking_tokens == 6  # not before the minimum


def test_the_cap_still_wins(tiny_model):
    model = Scripted(tiny_model, NEVER_END)
    st = one(model, budget(20, every=8, tokens=2, agree=3, read=constant("7")))
    assert st.thinking_tokens == 20 and st.capped and st.stopped_by == "cap"
    assert [p.at for p in st.probes] == [8, 16]  # none at the cap itself


def mixed_adaptive():
    def ids_reader(ids):  # the answer is what the random model says: it settles or it does not
        return (str(ids[0] % 3) if ids else None), False

    rules = [AdaptiveRule("consistency", every=3, tokens=4, agree=2, read=ids_reader),
             AdaptiveRule("confidence", every=5, tokens=3, confidence=0.0, read=ids_reader),
             AdaptiveRule("consistency", every=4, tokens=2, agree=10**6, read=ids_reader), None]  # fmt: skip
    budgets = [Budget(cap, num_ignore=k, max_answer_tokens=5, max_total_tokens=40, adaptive=rule)
               for (cap, k), rule in zip(itertools.product((9, None, 17), (0, 1)), itertools.cycle(rules))]  # fmt: skip
    return [Request(i, prompt(i), b) for i, b in enumerate(budgets)]


# thinks ten tokens (x 7 8 9 A B C D E F), then ends: with a one-token or a three-token delimiter
CHAIN = dict(zip((36, 37, 38, 39, 41, 42, 43, 44, 45), (37, 38, 39, 41, 42, 43, 44, 45)))
THINK_TEN = {**{i: 36 for i in range(103)}, **CHAIN, 45: END, WAIT: 36}
THINK_TEN_LONG_END = {**THINK_TEN, 45: 50, 50: 51, 51: 52, 52: 36}


@pytest.mark.parametrize("script,end", [(None, (END,)), (THINK_TEN, (END,)), (THINK_TEN_LONG_END, (50, 51, 52))],
                         ids=["free", "scripted", "multi-token-end"])  # fmt: skip
def test_probe_logits_equal_the_no_cache_reference_in_every_batch_layout(tiny_model, script, end):
    """A probe's tokens and probabilities are those of its prefix recomputed without a cache;
    rollbacks of a multi-token delimiter and of probes mix in one row without harm."""
    model = Scripted(tiny_model, script) if script else tiny_model
    tokens = forcing_tokens(end=end, answer=end + ANSWER[1:])
    requests = mixed_adaptive()
    ref = {r.key: naive(model, tokens, r) for r in requests}
    assert sum(len(s.probes) for s in ref.values()) >= 8
    for batch_size in (1, 3, 8):
        states, stats = run(model, tokens, requests, batch_size)
        assert stats.probe_tokens == sum(_fed(p, r.budget.adaptive) for r in requests for p in ref[r.key].probes)
        for r in requests:
            got, want = states[(r.key, 0)], ref[r.key]
            assert got.generated == want.generated, (batch_size, r.key)
            assert got.stopped_by == want.stopped_by and got.waits == want.waits
            assert [p.ids for p in got.probes] == [p.ids for p in want.probes]
            for a, b in zip(got.probes, want.probes):
                assert a.probs == pytest.approx(b.probs, rel=1e-6)  # the engine's logits are float32


def _fed(p: Probe, rule: AdaptiveRule) -> int:
    """Tokens of a probe that were fed to the model: all but a last answer token never fed."""
    return len(p.ids) - (1 if len(p.answer_ids) == rule.tokens else 0)


def test_sampled_rows_are_the_same_with_and_without_probes(tiny_model):
    """Probes pick greedily and never draw from a row's generator: sampled output is unchanged."""
    tokens = forcing_tokens()
    never = AdaptiveRule("consistency", every=3, tokens=3, agree=10**6, read=constant("1"))
    sampling = SamplingConfig(temperature=1.0, seed=5)
    base = [Request(i, prompt(i), Budget(c, max_answer_tokens=5, max_total_tokens=40), samples=[0, 1, 2])
            for i, c in enumerate((7, 15, None))]  # fmt: skip
    probed = [replace(r, budget=replace(r.budget, adaptive=never)) for r in base]
    events = {True: [], False: []}

    def collect(with_probes):
        return lambda ev: events[with_probes].append((ev.request.key, ev.sample, ev.token, ev.forced, ev.rollback))

    plain = {(f.request.key, f.sample): f.state for f in HFEngine(tiny_model, tokens, 4).run(base, sampling, collect(False))}
    with_p = {(f.request.key, f.sample): f.state for f in HFEngine(tiny_model, tokens, 4).run(probed, sampling, collect(True))}  # fmt: skip
    assert sum(len(s.probes) for s in with_p.values()) > 5
    for k, st in plain.items():
        assert with_p[k].generated == st.generated
    assert sorted(events[True]) == sorted(events[False])  # no probe token is streamed


def test_settled_rule_on_hand_made_probes():
    rule = AdaptiveRule("consistency", agree=2)
    p = lambda a, h=False, probs=(0.5,): Probe(at=0, answer=a, hesitant=h, probs=list(probs))  # noqa: E731
    assert not settled(rule, [p("1")])
    assert settled(rule, [p("1"), p("1")])
    assert not settled(rule, [p("1"), p("2")])
    assert not settled(rule, [p("1"), p("1", h=True)])
    assert not settled(rule, [p(None), p(None)])
    conf = AdaptiveRule("confidence", confidence=0.9)
    assert settled(conf, [p("1", probs=(0.95, 0.9))]) and not settled(conf, [p("1", probs=(0.95, 0.8))])
    assert not settled(conf, [p("", probs=(1.0,))])


def test_generate_adaptive_records_resume_and_frontier(tmp_path, tiny_checkpoint, capsys):
    """The CLI end to end: adaptive records carry probes, probe_tokens, stopped_by; a rerun adds
    nothing; another rule in the same file is refused; `frontier` draws sweep + adaptive."""
    import json

    from thinkscale.cli import main

    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"q": f"{i}+{i}?", "a": str(2 * i)}) + "\n" for i in range(3)))
    src = ["--data", data, "--question-field", "q", "--answer-field", "a", "--model", tiny_checkpoint,
           "--max-answer-tokens", "4"]  # fmt: skip
    run = tmp_path / "sweep"
    assert main([str(a) for a in ["sweep", *src, "--budgets", "8", "24", "--n", "2", "--temperature", "1", "--out", run]]) == 0
    ada = run / "adaptive.jsonl"
    flags = ["generate", *src, "--budget", "24", "--adaptive", "consistency", "--probe-every", "4",
             "--probe-tokens", "3", "--agree", "2", "--out", ada]  # fmt: skip
    assert main([str(a) for a in flags]) == 0
    recs = [json.loads(line) for line in ada.read_text().splitlines()]
    assert len(recs) == 3
    for r in recs:
        assert r["adaptive"] == "consistency every 4 tokens 3 agree 2" and r["stopped_by"] in ("model", "cap", "adaptive")
        assert r["probes"] == len(r["probe_answers"]) and r["probe_tokens"] >= r["probes"] * 2
        assert r["probes"] == min(r["thinking_tokens"], 23) // 4 or r["stopped_by"] == "model"
    assert main([str(a) for a in flags]) == 0 and len(ada.read_text().splitlines()) == 3  # resumed: nothing to do
    capsys.readouterr()
    other = [str(a) for a in flags]
    other[other.index("--agree") + 1] = "3"
    assert main(other) != 0 and "adaptive" in capsys.readouterr().err
    assert main(["frontier", str(run)]) == 0
    out = capsys.readouterr().out
    assert "adaptive" in out and "maj@2" in out
    metrics = json.loads((run / "metrics.json").read_text())
    kinds = {p["kind"] for p in metrics["frontier"]["q"]}
    assert kinds == {"sequential", "parallel", "adaptive"} and (run / "frontier.png").stat().st_size > 0
