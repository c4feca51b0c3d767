"""The vLLM engine behind the same interface as `HFEngine`: requests in, `Finished` samples out,
so `generate` writes the same records and resumes the same way.

One vLLM request per (question, sample) with its own seed; prefix caching shares the prompt.
Budget forcing runs inside vLLM's decode loop (`vllm_forcing.BudgetForcingProcessor`, one pass);
each output is then replayed through the HF engine's own `RowState`, which yields the records'
thinking/answer split and counts by the very rules the HF engine uses (and checks that vLLM
followed them: a token the state machine would not have fed is an error, not a silent record).
`--forcing multi-round` runs s1's repeated-generate method on vLLM through `run_multiround`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator

from thinkscale import ThinkscaleError
from thinkscale.infer.engines import Finished, OnToken, Request, SamplingConfig, replay_events
from thinkscale.infer.forcing import THINK, ForcingTokens, RowState


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def finalize_dropped_engines() -> None:
    """Run the finalizers of vLLM engines nothing refers to any more, now.

    vLLM's in-process engines share the process's distributed state, and an engine's finalizer
    tears that state down. Left to the collector, a dropped engine can be finalized while a newer
    one starts or runs, which then fails ("pipeline model parallel group is not initialized";
    seen in this project's tests, and a notebook that runs two models one after the other would
    hit it). Called before an engine is built. vLLM freezes the collector's heap at engine start,
    so an engine dropped since then is only reached after an unfreeze."""
    import gc

    gc.unfreeze()
    gc.collect()


def load_llm(
    model_path: str, dtype: str = "auto", max_num_seqs: int = 16, max_model_len: int = 8192, **engine_args
):
    """A vLLM `LLM` on a local checkpoint with our logits processor; in-process engine on CPU.
    `engine_args`: more of vLLM's engine arguments (tensor_parallel_size, ...), passed as given."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # no spawned engine process
    try:
        from vllm import LLM
    except ImportError:
        raise ThinkscaleError("--engine vllm needs vLLM: make install ENGINE=vllm") from None
    from thinkscale.infer.vllm_forcing import BudgetForcingProcessor
    from thinkscale.models import resolve_dtype

    finalize_dropped_engines()
    return LLM(
        model=model_path,
        dtype=resolve_dtype(dtype),
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        enforce_eager=True,
        enable_prefix_caching=True,
        logits_processors=[BudgetForcingProcessor],
        logprobs_mode="processed_logprobs",
        seed=0,
        **engine_args,
    )


def _forcing_args(tokens: ForcingTokens, budget) -> dict:
    return {
        "end_think": tokens.end_think[0],
        "answer": list(tokens.answer),
        "wait": list(tokens.wait),
        "newline": list(tokens.newline),
        "stop": sorted(tokens.stop),
        "ends_with_newline": sorted(tokens.ends_with_newline),
        "cap": budget.thinking_cap,
        "num_ignore": budget.num_ignore,
        "min_thinking": budget.min_thinking_tokens,
        "max_answer": budget.max_answer_tokens,
        # hybrid: a forced mode starts in its phase; auto lets the model's first token choose
        "start": {"short": "answer", "think": "think"}.get(budget.mode, "mode" if tokens.controls else "think"),
        "controls": {str(i): mode for i, mode in tokens.controls},
        "control_tail": list(tokens.control_tail),
    }


def _params(sampling: SamplingConfig, seed: int, **kw):
    from vllm import SamplingParams

    return SamplingParams(
        temperature=max(sampling.temperature, 0.0),
        top_p=sampling.top_p,
        top_k=sampling.top_k if sampling.top_k > 0 else 0,
        seed=seed,
        skip_special_tokens=False,
        detokenize=False,
        **kw,
    )


def replay(ids: list[int], forced: list[bool], tokens: ForcingTokens, budget) -> RowState:
    """The HF engine's state machine fed vLLM's output; a forced `Wait` where the machine had
    nothing queued is an end-of-thinking attempt that was ignored."""
    st = RowState(tokens, budget)
    for tok, was_forced in zip(ids, forced):
        proposed = tok
        if st.forced_next() is None and was_forced and st.phase == THINK and tok == tokens.wait[0]:
            proposed = tokens.end_think[0]
        fed = st.step(proposed)
        if fed is None:
            break
        if fed != tok:
            raise ThinkscaleError(
                f"vLLM output diverged from the forcing rules at token {len(st.generated)} "
                f"(vLLM fed {tok}, the state machine {fed})"
            )
        if st.finish_reason:
            break
    if st.finish_reason is None:
        st.finish_reason = "length"
    return st


def check_format(tokens: ForcingTokens) -> None:
    if tokens.thinks and len(tokens.end_think) != 1:
        raise ThinkscaleError(
            "--engine vllm forces single-token end-of-thinking delimiters (e.g. --format s1); "
            "use --engine hf for this format"
        )


class VLLMEngine:
    def __init__(self, llm, tokens: ForcingTokens, chunk_samples: int = 256, side_channel: bool | None = None):
        """`side_channel`: learn forced positions from the processor directly (default: when vLLM
        runs in this process); False: from processed log-probs."""
        check_format(tokens)
        self.llm, self.tokens, self.chunk_samples = llm, tokens, chunk_samples
        if side_channel is None:
            side_channel = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"  # the processor runs here
        self.side_channel = side_channel
        try:
            self.max_positions = int(llm.llm_engine.model_config.max_model_len)
        except AttributeError:  # another vLLM layout: vLLM itself then refuses a long prompt
            self.max_positions = None

    def run(
        self,
        requests: Iterable[Request],
        sampling: SamplingConfig = SamplingConfig(),
        on_token: OnToken | None = None,
    ) -> Iterator[Finished]:
        chunk: list[Request] = []
        samples = 0
        for r in requests:  # chunks: a crash loses at most one chunk of unwritten samples
            chunk.append(r)
            samples += len(r.samples)
            if samples >= self.chunk_samples:
                yield from self._run(chunk, sampling, on_token)
                chunk, samples = [], 0
        if chunk:
            yield from self._run(chunk, sampling, on_token)

    def _run(self, requests, sampling, on_token) -> Iterator[Finished]:
        from vllm.inputs import TokensPrompt

        from thinkscale.infer.vllm_forcing import FORCED

        side_channel = self.side_channel
        prompts, params, keys = [], [], []
        for r in requests:
            mine, tokens = r.sampling or sampling, r.tokens or self.tokens  # a server's request: its own
            limit = r.budget.max_new_tokens(tokens)
            if r.budget.max_tokens is not None:
                limit = min(limit, r.budget.max_tokens)
            for sample in r.samples:
                seed = r.seed_of(sample, mine) if r.seeds else mine.seed
                channel = uuid.uuid4().hex if side_channel and tokens.thinks else None
                extra = {"budget_forcing": {**_forcing_args(tokens, r.budget), "channel": channel}} if tokens.thinks else None
                prompts.append(TokensPrompt(prompt_token_ids=r.prompt_ids))
                params.append(_params(mine, seed, max_tokens=limit, logprobs=None if channel else 0, extra_args=extra))
                keys.append((r, sample, channel))
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        for (request, sample, channel), out in zip(keys, outputs):
            completion = out.outputs[0]
            ids = list(completion.token_ids)
            if channel is not None:
                at = set(FORCED.pop(channel, ()))
                forced = [i in at for i in range(len(ids))]
            else:
                forced = [
                    bool(lp) and lp.get(t) is not None and lp[t].logprob == 0.0
                    for t, lp in zip(ids, completion.logprobs or [None] * len(ids))
                ]
            fin = Finished(request, sample, replay(ids, forced, request.tokens or self.tokens, request.budget))
            if on_token is not None:
                replay_events(fin, on_token)
            yield fin

    def generate_fn(self, sampling: SamplingConfig):
        """`MultiRoundEngine`'s generate call on vLLM: s1's loop, token ids in and out."""
        from vllm.inputs import TokensPrompt

        def generate(
            seqs: list[list[int]], max_new: int, min_new: int, stop: list[int]
        ) -> list[list[int]]:
            if not seqs:  # s1's harness called generate([]) once every request had finished
                return []
            if max_new <= 0:
                raise ThinkscaleError(f"multi-round: a round got a budget of {max_new} tokens")
            p = _params(sampling, sampling.seed, max_tokens=max_new, min_tokens=min_new,
                        stop_token_ids=stop, include_stop_str_in_output=True)  # fmt: skip
            outs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=s) for s in seqs], p, use_tqdm=False
            )
            return [list(o.outputs[0].token_ids) for o in outs]

        return generate
