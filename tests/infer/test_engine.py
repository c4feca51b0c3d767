"""Budget forcing in one pass, on a tiny random Llama whose proposals are scripted.

`Scripted` adds a large bias so that the next token is a function of the current input token:
tests then know when the model "tries" to end thinking, while the real KV-cache path (prefill,
merges, trims, rollbacks) runs underneath. `naive` recomputes every step without a cache from the
same state machine: the engine must produce exactly what it produces, whatever the batch layout.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM

from thinkscale.infer.engines import Request, SamplingConfig
from thinkscale.infer.forcing import Budget, ForcingTokens, RowState
from thinkscale.infer.hf_engine import HFEngine
from thinkscale.infer.multiround import run_multiround

END, EOS, WAIT, NL = 1, 2, 40, 99  # <|im_start|>, <|im_end|>, 'W', '\n' in the test tokenizer
ANSWER = (1, 13, 14, 15)  # <|im_start|> + three answer-prefix tokens


def forcing_tokens(end=(END,), answer=ANSWER, wait=(WAIT,)) -> ForcingTokens:
    return ForcingTokens(
        end_think=end, answer=answer, wait=wait, newline=(NL,), stop=frozenset({EOS}),
        ends_with_newline=frozenset({NL}),
    )  # fmt: skip


class ScriptedLlama(LlamaForCausalLM):
    """next token = script[current input token] (when given), else the tiny model's own choice.
    The script is a lookup table (tensor ops only), so torch.compile traces it too."""

    table: torch.Tensor  # [vocab]: the scripted next token, -1 where the model chooses

    def forward(self, input_ids=None, **kw):
        out = super().forward(input_ids=input_ids, **kw)
        target = self.table[input_ids[:, -out.logits.shape[1] :]]
        bias = torch.zeros_like(out.logits).scatter_(
            -1, target.clamp(min=0).unsqueeze(-1), 1000.0 * (target >= 0).unsqueeze(-1).to(out.logits.dtype)
        )
        out.logits = out.logits + bias
        return out


def Scripted(model, script: dict[int, int]) -> ScriptedLlama:
    scripted = ScriptedLlama(model.config).to(model.dtype)
    scripted.load_state_dict(model.state_dict())
    scripted.table = torch.full((model.config.vocab_size,), -1, dtype=torch.long)
    for token, target in script.items():
        scripted.table[token] = target
    return scripted.eval()


def naive(model, tokens: ForcingTokens, request: Request) -> RowState:
    """Reference: no cache, full recompute each step, greedy."""
    state = RowState(tokens, request.budget)
    while not state.done:
        ids = torch.tensor([request.prompt_ids + state.generated])
        logits = model(input_ids=ids).logits[0, -1].clone()
        forced = state.forced_next()
        if forced is None:
            banned = state.banned()
            if banned:
                logits[list(banned)] = float("-inf")
        state.step(int(logits.argmax()) if forced is None else forced)
    return state


def prompt(i: int) -> list[int]:
    return [1, 80 + i % 10, 81, 82, 99, 1, 32, 20, 21, 26, 23][: 5 + i % 6]


def run(model, tokens, requests, batch_size=4, sampling=SamplingConfig()):
    eng = HFEngine(model, tokens, batch_size=batch_size)
    done = eng.run(requests, sampling)
    return {(f.request.key, f.sample): f.state for f in done}, eng.stats


# a model that never ends thinking on its own: every token maps to 'x' (id 36)
NEVER_END = {i: 36 for i in range(103)}
# ends thinking after 'x' (36): 36 -> END; other tokens -> 'x'
END_AFTER_X = {**{i: 36 for i in range(103)}, 36: END, WAIT: 37, 37: 36}


def test_cap_gives_exactly_cap_thinking_tokens_then_forced_delimiter(tiny_model):
    model = Scripted(tiny_model, NEVER_END)
    for cap in (1, 7, 20):
        states, _ = run(
            model, forcing_tokens(), [Request("q", prompt(3), Budget(cap, max_answer_tokens=5))]
        )
        st = states[("q", 0)]
        assert st.thinking_tokens == cap and st.capped
        assert st.thinking_ids() == [36] * cap
        # newline was missing, so it is forced first, then the whole answer delimiter + prefix
        assert st.generated[cap : cap + 1 + len(ANSWER)] == [NL, *ANSWER]
        assert st.forced[cap : cap + 1 + len(ANSWER)] == [True] * (1 + len(ANSWER))
        assert st.answer_tokens == 5 and st.finish_reason == "length"


def test_wait_is_forced_exactly_k_times(tiny_model):
    model = Scripted(tiny_model, END_AFTER_X)
    for k in (0, 1, 3):
        states, _ = run(
            model,
            forcing_tokens(),
            [Request("q", prompt(1), Budget(None, num_ignore=k, max_answer_tokens=3))],
        )
        st = states[("q", 0)]
        think = st.thinking_ids()
        assert st.waits == k
        assert think.count(WAIT) == k
        assert all(st.forced[i] for i, t in enumerate(think) if t == WAIT)
        assert END not in think  # the ignored attempts left no delimiter behind
        assert (
            st.generated[len(think)] == END and not st.capped
        )  # the (k+1)-th attempt was accepted


def test_cap_wins_over_waits(tiny_model):
    model = Scripted(tiny_model, END_AFTER_X)
    long_wait = (40, 41, 42, 43, 44)
    states, _ = run(
        model,
        forcing_tokens(wait=long_wait),
        [Request("q", prompt(2), Budget(4, num_ignore=5, max_answer_tokens=2))],
    )
    st = states[("q", 0)]
    assert st.thinking_tokens == 4 and st.capped
    assert st.thinking_ids() == [36, 40, 41, 42]  # cut inside the Wait


def test_no_end_of_thinking_before_minimum(tiny_model):
    model = Scripted(tiny_model, {i: END for i in range(103)})  # always wants to stop
    states, _ = run(
        model,
        forcing_tokens(),
        [Request("q", prompt(0), Budget(None, min_thinking_tokens=9, max_answer_tokens=2))],
    )
    st = states[("q", 0)]
    assert st.thinking_tokens == 9
    assert END not in st.thinking_ids() and EOS not in st.thinking_ids()
    assert st.generated[9] == END


def test_eos_during_thinking_ends_it_and_an_answer_follows(tiny_model):
    model = Scripted(tiny_model, {**{i: 36 for i in range(103)}, 36: EOS})
    states, _ = run(
        model, forcing_tokens(), [Request("q", prompt(0), Budget(50, max_answer_tokens=2))]
    )
    st = states[("q", 0)]
    assert st.thinking_ids() == [36] and not st.capped
    assert st.generated[1 : 2 + len(ANSWER)] == [NL, *ANSWER]


def mixed_requests():
    budgets = [Budget(2), Budget(9, num_ignore=2), Budget(None, num_ignore=1), Budget(30, min_thinking_tokens=5),
               Budget(5, num_ignore=1), Budget(17), Budget(1), Budget(12, num_ignore=3)]  # fmt: skip
    for b in budgets:
        b.max_answer_tokens = 6
        b.max_total_tokens = 60
    return [Request(i, prompt(i), b) for i, b in enumerate(budgets)]


@pytest.mark.parametrize("script", [None, END_AFTER_X], ids=["free", "scripted"])
def test_mixed_batches_match_the_no_cache_reference(tiny_model, script):
    """Other rows never change a row's output: continuous batching, merges and trims are exact."""
    model = Scripted(tiny_model, script) if script else tiny_model
    tokens = forcing_tokens()
    requests = mixed_requests()
    ref = {r.key: naive(model, tokens, r) for r in requests}
    for batch_size in (1, 3, 8):
        states, stats = run(model, tokens, requests, batch_size)
        for r in requests:
            assert states[(r.key, 0)].generated == ref[r.key].generated, (batch_size, r.key)
            assert states[(r.key, 0)].thinking_tokens == ref[r.key].thinking_tokens
            assert states[(r.key, 0)].waits == ref[r.key].waits


def test_multi_token_delimiter_is_rolled_back_exactly(tiny_model):
    """`</think>`-like delimiters span tokens: ignored attempts leave no trace in the context."""
    end = (50, 51, 52)
    script = {**{i: 36 for i in range(103)}, 36: 50, 50: 51, 51: 52, 52: 36, WAIT: 37, 37: 36}
    model = Scripted(tiny_model, script)
    tokens = forcing_tokens(end=end, answer=end + (13, 14))
    requests = [Request(i, prompt(i), Budget(cap, num_ignore=k, max_answer_tokens=4)) for i, (cap, k) in
                enumerate([(None, 2), (6, 3), (None, 0), (20, 1)])]  # fmt: skip
    ref = {r.key: naive(model, tokens, r) for r in requests}
    assert ref[0].waits == 2 and ref[0].thinking_ids().count(50) == 0
    states, _ = run(model, tokens, requests, batch_size=4)
    for r in requests:
        assert states[(r.key, 0)].generated == ref[r.key].generated
        assert states[(r.key, 0)].thinking_tokens == ref[r.key].thinking_tokens


def test_samples_share_one_prefill_and_are_reproducible(tiny_model):
    tokens = forcing_tokens()

    def req() -> Request:
        return Request(
            "q",
            prompt(5),
            Budget(12, max_answer_tokens=3),
            samples=[0, 1, 2, 3],
            seeds=[7, 8, 9, 10],
        )

    sampling = SamplingConfig(temperature=1.0, top_p=0.9, top_k=20)
    a, stats = run(tiny_model, tokens, [req()], batch_size=4, sampling=sampling)
    assert stats.prefill_tokens == len(prompt(5))  # one prefill for four samples
    b, _ = run(
        tiny_model,
        tokens,
        [req(), Request("other", prompt(2), Budget(3))],
        batch_size=2,
        sampling=sampling,
    )
    assert all(
        a[("q", s)].generated == b[("q", s)].generated for s in range(4)
    )  # batch layout does not matter
    assert len({tuple(a[("q", s)].generated) for s in range(4)}) > 1  # different seeds differ


def test_skewed_sweep_keeps_rows_busy(tiny_model):
    model = Scripted(tiny_model, NEVER_END)
    requests = [
        Request(i, prompt(i), Budget([4, 64, 8, 16][i % 4], max_answer_tokens=2)) for i in range(24)
    ]
    _, stats = run(model, forcing_tokens(), requests, batch_size=4)
    assert stats.utilization > 0.9, stats  # a static batch would idle ~60% here


def test_multiround_matches_single_pass_greedy(tiny_model):
    model = Scripted(tiny_model, END_AFTER_X)
    tokens = forcing_tokens()
    requests = [Request(i, prompt(i), Budget(cap, num_ignore=k, max_answer_tokens=4)) for i, (cap, k) in
                enumerate([(3, 0), (10, 2), (None, 1), (6, 5), (40, 3)])]  # fmt: skip
    single, _ = run(model, tokens, requests, batch_size=5)
    multi = {
        (f.request.key, f.sample): f.state
        for f in run_multiround(model, tokens, requests, batch_size=5)
    }
    for key, st in single.items():
        assert multi[key].generated == st.generated, key
        assert (multi[key].thinking_tokens, multi[key].waits, multi[key].capped) == (
            st.thinking_tokens,
            st.waits,
            st.capped,
        )


def test_compiled_engine_matches_eager_and_reuses_its_graphs(tiny_model, capsys):
    """torch.compile'd decode step (HFEngine(compile=True)): `warm_up` compiles one graph per
    batch of 1..SMALL_BATCH rows and one dynamic graph for larger batches; after it, runs in two
    row layouts (rows joining and leaving, a 200-token row outgrowing its first cache buffer,
    left-trims) compile nothing and give the eager engine's greedy tokens on mixed caps, Waits,
    minimums and a rolled-back multi-token delimiter. The static graphs compute their linears
    as Inductor reductions, and dynamo traces each graph once (`compile_decode`)."""
    from torch._dynamo.utils import counters

    from thinkscale.infer.hf_engine import SMALL_BATCH, compile_restarts, compiled_graphs

    end = (50, 51, 52)
    script = {**{i: 36 for i in range(103)}, 36: 50, 50: 51, 51: 52, 52: 36, WAIT: 37, 37: 36}
    model = Scripted(tiny_model, script)
    tokens = forcing_tokens(end=end, answer=end + (13, 14))
    batch = SMALL_BATCH + 2

    def requests(shift: int) -> list[Request]:
        plan = [(None, 2), (6, 3), (None, 0), (200, 1), (3, 0), (12, 2), (9, 0), (30, 1)] * 2
        budgets = [Budget(cap, num_ignore=k, max_answer_tokens=4, min_thinking_tokens=2 * (i % 2))
                   for i, (cap, k) in enumerate(plan[shift:] + plan[:shift])]  # fmt: skip
        return [Request(i, prompt(i + shift), b) for i, b in enumerate(budgets)]

    compiled = HFEngine(model, tokens, batch_size=batch, compile=True)
    before = counters["inductor"]["decompose_mm"]
    restarts = compile_restarts()
    assert compiled.warm_up_seconds is None
    assert compiled.warm_up(prompt(0), progress=True) == compiled.warm_up_seconds > 0
    assert compiled.stats.compiles == SMALL_BATCH + 1  # 1, 2, .., SMALL_BATCH rows, then dynamic
    bar = capsys.readouterr().err.split("\r")[-1]  # the bar's last state
    assert bar.startswith("compiling the decode step: 100%") and f"| {SMALL_BATCH + 1}/{SMALL_BATCH + 1} [" in bar
    assert counters["inductor"]["decompose_mm"] > before
    # each graph was traced once: dynamo did not restart to specialise the model's floats
    assert compile_restarts() == restarts
    graphs = compiled_graphs()
    for shift in (0, 3):  # two row layouts
        got = {(f.request.key, f.sample): f.state.generated for f in compiled.run(requests(shift))}
        reference, _ = run(model, tokens, requests(shift), batch_size=batch)
        assert got == {k: st.generated for k, st in reference.items()}
    assert compiled_graphs() == graphs  # no recompile as rows join and leave


def test_compiled_graphs_are_guarded_on_the_model_key_not_on_each_module(tokenizer):
    """The compiled step drops dynamo's guards on the model's modules and weights (a batch-1 step
    of the embedded model spent ~2 ms in them) and guards on `model_key` instead: a model with
    other weights but the same key reuses the graph and decodes with its own weights; a model
    whose norms have another epsilon (a constant the graph bakes in) gets a graph of its own.
    Each gives its eager engine's greedy tokens."""
    from tests.conftest import make_model
    from thinkscale.infer.hf_engine import compiled_graphs, model_key

    def model(seed: int):  # weights large enough that greedy decoding does not just repeat
        net = make_model(len(tokenizer))
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed + p.numel()))
        return net

    base, other_weights, other_eps = model(1), model(2), model(1)
    other_eps.config.rms_norm_eps = 0.5
    for module in other_eps.modules():
        if hasattr(module, "variance_epsilon"):
            module.variance_epsilon = 0.5
    assert model_key(base) == model_key(other_weights) != model_key(other_eps)
    tokens = forcing_tokens()
    requests = [Request(i, prompt(i), Budget(10, max_answer_tokens=3)) for i in range(3)]

    def greedy(model, compile: bool) -> dict:
        engine = HFEngine(model, tokens, batch_size=1, compile=compile)
        return {f.request.key: f.state.generated for f in engine.run(requests)}

    eager = {name: greedy(m, False) for name, m in
             [("base", base), ("other_weights", other_weights), ("other_eps", other_eps)]}  # fmt: skip
    # the three models decode differently: a graph reused across them would show
    assert eager["base"] != eager["other_weights"] and eager["base"] != eager["other_eps"]
    graphs = compiled_graphs()
    assert greedy(base, True) == eager["base"]
    assert compiled_graphs() == graphs + 1
    assert greedy(other_weights, True) == eager["other_weights"]
    assert compiled_graphs() == graphs + 1  # the same key: base's graph, other_weights' weights
    assert greedy(other_eps, True) == eager["other_eps"]
    assert compiled_graphs() == graphs + 2


def test_compiled_kernels_are_kept_under_thinkscale_home(tmp_path, monkeypatch):
    """Inductor's default cache folder is under /tmp, which a reboot empties: a server's restart
    would compile for minutes again instead of loading its kernels. A compiled decode step keeps
    them in $THINKSCALE_HOME/inductor, unless TORCHINDUCTOR_CACHE_DIR says where."""
    import os

    from torch._inductor.utils import clear_caches

    from thinkscale.infer.hf_engine import compile_decode

    def scaled(x):  # a kernel no other test compiles
        return x * 2.5 + 0.125

    monkeypatch.setenv("THINKSCALE_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    try:
        out = compile_decode(scaled)(torch.arange(8.0))
        assert torch.allclose(out, torch.arange(8.0) * 2.5 + 0.125)
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
        assert [f for f in (tmp_path / "inductor").rglob("*") if f.is_file()]  # Inductor wrote there
        monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
        compile_decode(scaled)
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    finally:
        clear_caches()  # Inductor's in-memory paths into tmp_path go with it


def test_a_failed_background_compile_leaves_the_engine_eager(tiny_model, monkeypatch):
    """`warm_up_in_background` (serve's default): if compiling fails, the failure is kept in
    `compile_error` and `run` goes on with the eager step: the same tokens, no graph compiled."""
    from thinkscale.infer.hf_engine import compiled_graphs

    def broken(self, *args, **kwargs):
        raise RuntimeError("no C++ compiler")

    tokens = forcing_tokens()
    compiled = HFEngine(tiny_model, tokens, batch_size=2, compile=True)
    monkeypatch.setattr(HFEngine, "warm_up", broken)
    compiled.warm_up_in_background(prompt(0)).join(timeout=60)
    assert isinstance(compiled.compile_error, RuntimeError)
    graphs = compiled_graphs()
    requests = [Request(i, prompt(i), Budget(6, num_ignore=1, max_answer_tokens=3)) for i in range(3)]
    got = {(f.request.key, f.sample): f.state.generated for f in compiled.run(requests)}
    reference, _ = run(tiny_model, tokens, requests, batch_size=2)
    assert got == {k: st.generated for k, st in reference.items()}
    assert compiled_graphs() == graphs and compiled.stats.compiles == 0


def test_during_a_background_warm_up_the_finished_graphs_serve(tiny_model, monkeypatch):
    """While the warm-up compiles in its thread, the serving thread runs each graph the warm-up
    has finished (here the batch-1 graph; then the warm-up is held back) and the eager step
    where none fits yet (2 rows). It compiles nothing itself, and each output is the eager
    engine's."""
    import threading

    from thinkscale.infer.hf_engine import compiled_graphs

    gate, one_ready = threading.Event(), threading.Event()

    def warm_up(self, prompt_ids, progress=False):  # the batch-1 graph, then wait for the test
        list(self.run([Request("warm-up", prompt_ids, Budget(4, max_answer_tokens=2))]))
        one_ready.set()
        gate.wait(120)
        return 0.0

    tokens = forcing_tokens()
    monkeypatch.setattr(HFEngine, "warm_up", warm_up)
    engine = HFEngine(tiny_model, tokens, batch_size=2, compile=True)
    thread = engine.warm_up_in_background(prompt(0))
    lone = [Request("lone", prompt(3), Budget(6, num_ignore=1, max_answer_tokens=3))]
    pair = [Request(i, prompt(i), Budget(5 + i, num_ignore=1, max_answer_tokens=3)) for i in (4, 5)]
    try:
        assert one_ready.wait(300) and engine.warming_up
        eager_steps = []  # the model called for one new token per row: an eager decode step
        forward = tiny_model.forward
        monkeypatch.setattr(tiny_model, "forward",
                            lambda *a, **kw: eager_steps.append(kw["input_ids"].shape) or forward(*a, **kw)
                            if kw["input_ids"].shape[1] == 1 else forward(*a, **kw))  # fmt: skip
        graphs = compiled_graphs()
        got_lone = {f.request.key: f.state.generated for f in engine.run(lone)}
        assert eager_steps == []  # every step of the lone request ran the batch-1 graph
        got_pair = {f.request.key: f.state.generated for f in engine.run(pair)}
        assert eager_steps and {shape[0] for shape in eager_steps} == {2}  # no 2-row graph yet
        assert compiled_graphs() == graphs and engine.warming_up
        monkeypatch.setattr(tiny_model, "forward", forward)
    finally:
        gate.set()
        thread.join(timeout=60)
    assert got_lone == {k[0]: st.generated for k, st in run(tiny_model, tokens, lone, batch_size=1)[0].items()}
    assert got_pair == {k[0]: st.generated for k, st in run(tiny_model, tokens, pair, batch_size=2)[0].items()}


@pytest.mark.slow
def test_compiled_engine_matches_eager_on_the_embedded_model():
    """The real model (fp32) on 4 GSM8K prompts with mixed caps and Waits, s1's multi-token
    delimiters: the compiled decode step gives the eager engine's greedy tokens exactly."""
    from thinkscale.formats import get_format
    from thinkscale.models import load_model
    from thinkscale.tasks import get_task

    model, tok = load_model("smollm2-135m", dtype="float32")
    fmt, task = get_format("s1"), get_task("gsm8k")
    tokens = ForcingTokens.from_tokenizer(tok, fmt)
    plan = [(24, 0), (40, 2), (16, 1), (32, 3)]
    requests = [Request(i, tok.encode(fmt.render_prompt(tok, task.prompt(ex)), add_special_tokens=False),
                        Budget(cap, num_ignore=k, max_answer_tokens=8))
                for i, (ex, (cap, k)) in enumerate(zip(task.load(4), plan))]  # fmt: skip

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def greedy(compile: bool) -> dict:
        engine = HFEngine(model, tokens, batch_size=4, pad_token_id=pad, compile=compile)
        return {f.request.key: (f.state.generated, f.state.forced) for f in engine.run(requests)}

    eager, compiled = greedy(False), greedy(True)
    assert compiled == eager
    assert sum(sum(forced) for _, forced in eager.values()) > 4 * 3  # delimiters and Waits were forced
