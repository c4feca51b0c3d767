"""HF transformers engine: budget forcing in one decode pass, with continuous batching.

One loop, readable top to bottom:
1. admit waiting requests into free rows: prefill each new prompt once (left-padded batch), copy
   its KV cache to its n sample rows, and merge it into the running cache (left-padding the
   shorter of the two so every row's latest token sits in the last column);
2. every row either takes its forced token (budget forcing) or samples from its logits;
3. finished rows leave the batch at once, so a short answer never waits for a long one;
4. one forward step for all live rows, with per-row position ids and a 2D attention mask.
Tokens that leave a row's context (a rejected multi-token delimiter, an adaptive-thinking probe)
are masked out of attention and the row's position steps back: no copy, no re-prefill.
With `compile`, step 4 is `torch.compile`d (dynamic shapes: rows joining and leaving and the
growing context reuse the compiled graphs; batches of 1 to `SMALL_BATCH` rows get one each,
whose matrix-vector products Inductor generates itself, see `compile_decode`); prefill stays
eager.
The engine is pure token ids; tokenization stays outside. A server passes `incoming`, a queue
the loop drains every step (requests join a running batch; `None` ends the loop once idle), and
sets `request.cancelled` when a client leaves (its rows leave at the next step).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from thinkscale.infer.engines import Finished, OnToken, Request, SamplingConfig, TokenEvent
from thinkscale.infer.forcing import ANSWER, MODE, THINK, Budget, ForcingTokens, RowState
from thinkscale.infer.kvcache import growing_cache, reserve
from thinkscale.infer.sampling import filtered_logits
from thinkscale.models import thinkscale_home

__all__ = ["HFEngine", "Request", "SamplingConfig", "Finished", "left_pad"]


@dataclass
class EngineStats:
    steps: int = 0
    row_steps: int = 0  # rows computed, summed over decode steps
    useful_tokens: int = 0  # tokens kept in some output
    prefill_tokens: int = 0
    probe_tokens: int = 0  # tokens computed for adaptive-thinking probes (then taken back)
    compiles: int = 0  # decode steps that compiled a new graph (--compile)
    compile_seconds: float = 0.0  # wall time of those steps: the warm-up a compiled engine pays

    @property
    def utilization(self) -> float:
        return self.useful_tokens / self.row_steps if self.row_steps else 0.0


@dataclass
class _Row:
    request: Request
    sample: int
    state: RowState
    position: int  # position id of the next fed token
    generator: torch.Generator | None
    sampling: SamplingConfig


class HFEngine:
    def __init__(
        self,
        model,
        forcing_tokens: ForcingTokens,
        batch_size: int = 16,
        pad_token_id: int = 0,
        compile: bool = False,
    ):
        self.model = model
        self.compiled = compile
        self.model_key = model_key(model) if compile else ""  # what the compiled graphs are guarded on
        # the compiled steps (`_step` takes `_forward` itself when they are not to serve), and
        # the same with the graphs compiled so far only, for serving during a background warm-up
        self._decode = compile_decode(self._forward) if compile else None
        self._decode_small = compile_decode(self._forward_small) if compile else None
        self._decode_ready = torch._dynamo.run(self._forward) if compile else None
        self._decode_small_ready = torch._dynamo.run(self._forward_small) if compile else None
        self.tokens = forcing_tokens
        self.batch_size = batch_size
        self.pad_token_id = pad_token_id
        self.max_positions = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self.device = next(model.parameters()).device
        self.stats = EngineStats()
        self.compiling: threading.Thread | None = None  # a warm-up in the background (serve)
        self.compile_error: BaseException | None = None  # why it failed; the engine stays eager
        self.warm_up_seconds: float | None = None  # how long the last warm-up took, once it has ended

    @torch.inference_mode()
    def run(
        self,
        requests: Iterable[Request],
        sampling: SamplingConfig = SamplingConfig(),
        on_token: OnToken | None = None,
        incoming: queue.Queue | None = None,
    ) -> Iterator[Finished]:
        waiting = deque((r, list(r.samples)) for r in requests)
        rows: list[_Row] = []
        cache, mask, logits = None, None, None

        while waiting or rows or incoming is not None:
            if incoming is not None:  # a server: take what arrived; wait for work when idle
                incoming = _drain(incoming, waiting, block=not waiting and not rows)
            if any(r.request.dropped(r.sample) for r in rows):
                keep = [i for i, r in enumerate(rows) if not r.request.dropped(r.sample)]
                rows, cache, mask, logits = self._select(rows, cache, mask, logits, keep)
            while waiting and waiting[0][0].cancelled:
                waiting.popleft()
            if waiting and len(rows) < self.batch_size:
                new_rows, new_cache, new_mask, new_logits = self._admit(
                    waiting, self.batch_size - len(rows), sampling
                )
                rows += new_rows
                cache, mask, logits = _merge(cache, mask, logits, new_cache, new_mask, new_logits)

            next_ids, probs = self._choose(rows, logits)
            keep, finished = [], []
            for i, (row, token) in enumerate(zip(rows, next_ids)):
                st = row.state
                fed = st.step(token, probs[i])
                rollback, probe = st.take_rollback()
                if rollback + probe:  # a multi-token delimiter or a finished probe left the context
                    mask[i, mask.shape[1] - rollback - probe :] = 0
                    row.position -= rollback + probe
                    self.stats.probe_tokens += probe
                if on_token is not None and fed is not None and not st.probing:
                    phase = st.phase if st.phase in (THINK, MODE) else ANSWER
                    on_token(TokenEvent(row.request, row.sample, fed, st.forced[-1], phase, rollback))
                if not st.done and row.position + 1 >= self.max_positions:
                    st.finish("context")
                if st.done:
                    self.stats.useful_tokens += len(st.generated)
                    finished.append(Finished(row.request, row.sample, st))
                else:
                    next_ids[i] = fed
                    keep.append(i)
            yield from finished
            if len(keep) < len(rows):
                next_ids = [next_ids[i] for i in keep]
                # no logits to keep: the forward below computes the next ones
                rows, cache, mask, logits = self._select(rows, cache, mask, None, keep)
            if not rows:
                continue

            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            cache, mask = _trim_left(cache, mask)
            positions = torch.tensor([[r.position] for r in rows], device=self.device)
            inputs = torch.tensor([[t] for t in next_ids], device=self.device)
            logits = self._step(inputs, mask, positions, cache)
            for r in rows:
                r.position += 1
            self.stats.steps += 1
            self.stats.row_steps += len(rows)

    def warm_up(self, prompt_ids: list[int], progress: bool = False) -> float:
        """Compile every decode graph now (batch 1, each small batch, then the dynamic one)
        instead of inside the first requests, which would otherwise wait a minute or more;
        returns the seconds spent (also kept in `warm_up_seconds`, for a warm-up in the
        background). Inductor caches the graphs on disk, so a restart is faster.
        `progress`: a bar on stderr, one step a graph (a first start takes minutes on a CPU)."""
        if not self.compiled:
            return 0.0
        from tqdm.auto import tqdm

        start = time.perf_counter()
        budget = Budget(4, max_answer_tokens=2)
        sizes = range(1, min(self.batch_size, SMALL_BATCH + 1) + 1)
        for rows in tqdm(sizes, desc="compiling the decode step", unit="graph", disable=not progress):
            list(self.run([Request("warm-up", prompt_ids, budget, samples=list(range(rows)))]))
        self.warm_up_seconds = time.perf_counter() - start
        return self.warm_up_seconds

    def warm_up_in_background(self, prompt_ids: list[int], progress: bool = False) -> threading.Thread:
        """`warm_up` in a thread while `run` keeps decoding: a server answers at once instead of
        after minutes of compiling. Meanwhile the serving thread runs each graph as soon as the
        warm-up has compiled it (dynamo's run-only mode), and the eager step where none fits
        yet; it never compiles (dynamo's frame hook is per thread). Once every graph is ready,
        `run` decodes as a warmed-up engine does. If compiling fails, the engine stays eager
        (`compile_error`); join the returned thread to wait for the end of the warm-up."""

        def warm() -> None:
            try:
                seconds = self.warm_up(prompt_ids, progress)
                print(f"thinkscale: compiled the decode step in {seconds:.0f} s", file=sys.stderr)
            except Exception as e:  # the eager step keeps serving
                self.compile_error = e
                print(f"thinkscale: compiling the decode step failed ({e!r}); decoding stays eager", file=sys.stderr)

        self.compiling = threading.Thread(target=warm, name="thinkscale-compile", daemon=True)
        self.compiling.start()
        return self.compiling

    @property
    def warming_up(self) -> bool:
        """A background warm-up is still compiling (`/health` reports it)."""
        return self.compiling is not None and self.compiling.is_alive()

    def _forward(self, inputs, mask, positions, cache) -> torch.Tensor:
        if self.compiled and not self.model_key:  # traced, this guards a compiled graph on the key
            raise ValueError("a compiled engine needs its `model_key` (see `_skip_model_guards`)")
        out = self.model(
            input_ids=inputs,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        return out.logits[:, -1, :].float()

    def _forward_small(self, inputs, mask, positions, cache) -> torch.Tensor:
        """`_forward` under another name: dynamo keeps its graphs per function, so the small
        batches' static graphs and the dynamic batch graph do not displace each other."""
        return self._forward(inputs, mask, positions, cache)

    def _step(self, inputs, mask, positions, cache) -> torch.Tensor:
        """One decode step; a compiled engine also counts the steps that compiled a graph."""
        during_warm_up = self.warming_up and threading.current_thread() is not self.compiling
        if not self.compiled or self.compile_error is not None or (during_warm_up and not SERVE_READY_GRAPHS):
            return self._forward(inputs, mask, positions, cache)
        # the graph stays one graph only if nothing it sees changes kind between steps: the
        # cache grows outside it, and the mask (a slice after a left-trim) is copied to fresh
        # strides and offset 0 (`contiguous()` keeps a one-row slice's strides)
        reserve(cache, inputs.shape[1])
        mask = mask.clone(memory_format=torch.contiguous_format)
        torch._dynamo.maybe_mark_dynamic(mask, 1)  # even when its width equals a model size
        small = 1 < len(inputs) <= SMALL_BATCH  # a graph per size, whose linears are reductions too
        if small:
            for t in (inputs, mask, positions):
                torch._dynamo.mark_static(t, 0)
        if during_warm_up:  # serving meanwhile: the graphs the warm-up has finished, else eager
            ready = self._decode_small_ready if small else self._decode_ready
            return ready(inputs, mask, positions, cache)
        decode = self._decode_small if small else self._decode
        before, t0 = compiled_graphs(), time.perf_counter()
        logits = decode(inputs, mask, positions, cache)
        if compiled_graphs() > before:
            self.stats.compiles += 1
            self.stats.compile_seconds += time.perf_counter() - t0
        return logits

    def _select(self, rows, cache, mask, logits, keep: list[int]):
        """Keep rows `keep` (indices) of the batch; the rest leave the cache."""
        if len(keep) == len(rows):
            return rows, cache, mask, logits
        if not keep:
            return [], None, None, None
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        cache.batch_select_indices(idx)
        return [rows[i] for i in keep], cache, mask[idx], logits[idx] if logits is not None else None

    # -- admission: prefill new prompts once, fan out to their samples ---------------------
    def _admit(self, waiting: deque, free: int, sampling: SamplingConfig):
        groups = []
        while free > 0 and waiting:
            request, samples = waiting.popleft()
            take, rest = samples[:free], samples[free:]
            if rest:
                waiting.appendleft((request, rest))
            groups.append((request, take))
            free -= len(take)
        ids, mask = left_pad([r.prompt_ids for r, _ in groups], self.pad_token_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = growing_cache(self.model.config)
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        fan_out = [g for g, (_, take) in enumerate(groups) for _ in take]
        self.stats.prefill_tokens += int(mask.sum())
        self.stats.row_steps += len(fan_out)  # each row's first token comes from the prefill logits
        fan_idx = torch.tensor(fan_out, dtype=torch.long, device=self.device)
        if fan_out != list(range(len(groups))):
            cache.batch_select_indices(fan_idx)
        rows = []
        for request, take in groups:
            mine = request.sampling or sampling
            for s in take:
                gen = None
                if not mine.greedy:
                    seed = request.seed_of(s, mine)
                    gen = torch.Generator(device="cpu").manual_seed(int(seed))
                state = RowState(request.tokens or self.tokens, request.budget)
                rows.append(_Row(request, s, state, len(request.prompt_ids), gen, mine))
        return rows, cache, mask.to(self.device)[fan_idx], out.logits[:, -1, :].float()[fan_idx]

    # -- choosing the next token of every row ----------------------------------------------
    def _choose(self, rows: list[_Row], logits: torch.Tensor) -> tuple[list[int], list[float | None]]:
        """Every row's next proposal: its forced token, a probe's greedy pick (with its
        probability), or a draw from its own (filtered) distribution."""
        chosen: list[int | None] = [row.state.forced_next() for row in rows]
        probs: list[float | None] = [None] * len(rows)
        probing = [i for i, c in enumerate(chosen) if c is None and rows[i].state.probing]
        if probing:  # greedy, from the unfiltered distribution; the row's generator is untouched
            best = logits[probing].softmax(-1).max(-1)
            for j, i in enumerate(probing):
                chosen[i], probs[i] = int(best.indices[j]), float(best.values[j])
        free = [i for i, c in enumerate(chosen) if c is None]
        if not free:
            return chosen, probs  # type: ignore[return-value]
        sub = logits[free]
        for j, i in enumerate(free):
            banned = rows[i].state.banned()
            if banned:
                sub[j, list(banned)] = float("-inf")
        # rows of one sampling setting are drawn together (a batch job: all of them)
        by_setting: dict[SamplingConfig, list[int]] = {}
        for j, i in enumerate(free):
            by_setting.setdefault(rows[i].sampling, []).append(j)
        for setting, js in by_setting.items():
            part = sub if len(js) == len(free) else sub[js]
            if setting.greedy:
                picks = part.argmax(-1).tolist()
            else:
                picks = _sample(part, setting, [rows[free[j]].generator for j in js])
            for j, pick in zip(js, picks):
                chosen[free[j]] = pick
        return chosen, probs  # type: ignore[return-value]


SMALL_BATCH = 4  # batches of 2..SMALL_BATCH rows get a static graph each (see compile_decode)
SPECIALIZE_FLOATS = True  # see compile_decode; benchmarks/bench_compile.py turns it off for its baseline
# during a background warm-up the serving thread runs the graphs compiled so far (off: the eager
# step until every graph is ready; benchmarks/bench_serve_warm_up.py's baseline)
SERVE_READY_GRAPHS = True


def compile_decode(forward):
    """`torch.compile` of the decode step, with Inductor's `decompose_mm_pass` on for CPU.

    At batch 1 every linear is a matrix-vector product. MKL's sgemv read weights at ~11 GB/s
    on an AMD EPYC, with 1 thread or 2, while a plain sum read 50 GB/s; 86% of a batch-1 step
    was there, and 2-4 rows were slower still (MKL's GEMM). The pass rewrites an `mm` of at
    most `SMALL_BATCH` rows as multiply-and-sum, which Inductor fuses into vectorised, threaded
    reduction kernels that stream the weights: 211 linears took 17-42 ms at 1-4 rows against
    45-94 ms with MKL (benchmarks/README.md). Only graphs whose batch is static match (size 1,
    which dynamo specialises, and the small batches `_step` marks static), so the dynamic
    batch graph keeps MKL's GEMM; on a GPU the pass only touches shapes decoding never has.
    Its bounds (read once at import) are raised so the output projection is rewritten too.
    """
    from torch._inductor.fx_passes import decompose_mem_bound_mm as mm_pass

    mm_pass.cpu_max_other_dimension_decomposition = max(
        mm_pass.cpu_max_other_dimension_decomposition, 1 << 20
    )
    mm_pass.cpu_max_first_dimension_decomposition = max(
        mm_pass.cpu_max_first_dimension_decomposition, SMALL_BATCH
    )
    # every engine (model, dtype) adds up to SMALL_BATCH + 1 graphs to the caches of `_forward`
    # and `_forward_small`; past dynamo's limit (8 a function) it falls back to eager silently
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    # Inductor keeps its compiled kernels under /tmp unless told otherwise, and a reboot (a tmpfs)
    # empties that: the server's restart would compile for minutes again instead of about one
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(thinkscale_home() / "inductor"))
    options = {"post_grad_fusion_options": {"decompose_mm_pass": {}}, "guard_filter_fn": _skip_model_guards}
    compiled = torch.compile(forward, dynamic=True, options=options)
    # With dynamic shapes dynamo makes every Python float the model reads an input of the graph
    # (each norm's epsilon, the attention's scale, the rotary scaling), finds while compiling
    # that they must be constants, and traces the whole model again. Specialising floats from
    # the start traces once: the server's 5 graphs took 54 s instead of 121 from Inductor's disk
    # cache, 343 s instead of 404 cold (benchmarks/bench_compile.py, benchmarks/README.md).
    if not SPECIALIZE_FLOATS:
        return compiled
    return torch._dynamo.config.patch(specialize_float=True)(compiled)


def _skip_model_guards(entries) -> list[bool]:
    """Dynamo's guards without those on the model's modules and weights.

    Before every call of a compiled graph dynamo checks what the trace read: for a decoder, each
    module's attributes and each weight's shape, dtype and strides. For the embedded model's
    batch-1 graph dynamo put that check at 2,424 µs, and at 529-655 µs without them (the inputs,
    the KV cache, globals); decoding ran 1.03x faster (8 runs in turns, AMD EPYC, benchmarks/README.md). The
    graphs read the weights as inputs at every call, so trained or reloaded weights are used as
    they are. What the dropped guards would catch (a model of another class, config, epsilon,
    attention implementation, module layout, weight shape or dtype) is in `model_key`, which
    `_forward` reads and dynamo guards on as one string. Changing a model's structure under a
    running engine is not caught: build a new engine."""
    return [not entry.orig_guard.source.is_unspecialized_nn_module() for entry in entries]


def model_key(model) -> str:
    """A digest of what a compiled decode graph bakes in besides the weights' values: the class,
    the config (sizes, epsilons, rotary settings), the attention implementation, the modules
    and their modes, each weight's shape, dtype and device."""
    import hashlib
    import json

    config = model.config  # every field, and a readable stand-in for what JSON cannot hold
    parts = [f"{type(model).__module__}.{type(model).__qualname__}",
             json.dumps(config.to_dict(), sort_keys=True, default=repr),
             str(getattr(config, "_attn_implementation", None))]  # fmt: skip
    parts += [f"{name} {type(m).__qualname__} {m.training}" for name, m in model.named_modules()]
    parts += [f"{name} {tuple(t.shape)} {t.dtype} {t.device}"
              for name, t in model.state_dict(keep_vars=True).items()]  # fmt: skip
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def compiled_graphs() -> int:
    """Graphs torch.compile has made in this process (dynamo's own counter)."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def compile_restarts() -> int:
    """Times dynamo traced a frame a second time in this process ("Restarting analysis"): its
    second attempts, as dynamo times them."""
    from torch._dynamo.utils import compilation_time_metrics

    return len(compilation_time_metrics.get("compile_attempt_1", []))


def _drain(incoming: queue.Queue, waiting: deque, block: bool) -> queue.Queue | None:
    """Move arrived requests to `waiting` (blocking for one when idle); None once the `None`
    sentinel arrives (no more requests: finish what is running)."""
    while True:
        try:
            item = incoming.get(block=block)
        except queue.Empty:
            return incoming
        if item is None:
            return None
        waiting.append((item, list(item.samples)))
        block = False


def left_pad(seqs: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (ids, attention mask), right-aligned so every row's last token is last."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids, mask


def _sample(logits: torch.Tensor, sampling: SamplingConfig, generators: list) -> list[int]:
    """One draw per row from the filtered distribution, with that row's own generator."""
    values, index = filtered_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p)
    probs = values.softmax(-1)
    return [
        int(index[j, torch.multinomial(probs[j], 1, generator=g)]) for j, g in enumerate(generators)
    ]


def _layers(cache):
    return [layer for layer in cache.layers if getattr(layer, "keys", None) is not None]


def _pad_left(t: torch.Tensor, width: int) -> torch.Tensor:
    """Left-pad dim -2 (sequence) of a KV tensor, or dim 1 of a mask, to `width`."""
    missing = width - (t.shape[-2] if t.dim() == 4 else t.shape[1])
    if missing <= 0:
        return t
    if t.dim() == 4:
        pad = t.new_zeros(t.shape[0], t.shape[1], missing, t.shape[3])
        return torch.cat([pad, t], dim=-2)
    return torch.cat([t.new_zeros(t.shape[0], missing), t], dim=1)


def _merge(cache, mask, logits, new_cache, new_mask, new_logits):
    if cache is None:
        return new_cache, new_mask, new_logits
    width = max(mask.shape[1], new_mask.shape[1])
    for old, new in zip(_layers(cache), _layers(new_cache)):
        # compute both before assigning either: assigning keys sets the layer's filled length
        keys = torch.cat([_pad_left(old.keys, width), _pad_left(new.keys, width)], dim=0)
        values = torch.cat([_pad_left(old.values, width), _pad_left(new.values, width)], dim=0)
        old.keys, old.values = keys, values
    mask = torch.cat([_pad_left(mask, width), _pad_left(new_mask, width)], dim=0)
    return cache, mask, torch.cat([logits, new_logits], dim=0)


def _trim_left(cache, mask):
    """Drop leading columns that no row attends to (left padding of rows that have left)."""
    live = mask.any(dim=0).nonzero()
    start = int(live[0]) if len(live) else 0
    if start == 0:
        return cache, mask
    for layer in _layers(cache):
        layer.keys, layer.values = layer.keys[:, :, start:, :], layer.values[:, :, start:, :]
    return cache, mask[:, start:]
