"""s1's multi-round budget forcing: repeated `generate` calls on token ids, for comparison.

Round 0 thinks until an end-of-thinking token or the cap; each extension round appends `Wait` and
calls `generate` again with `min_new_tokens=1`; then the answer delimiter is appended and a last
call decodes the answer. Token ids are re-fed (never text), so there is no re-tokenization drift.
Unlike s1's harness, every round gets only the budget that is left, so thinking never exceeds the
cap. Each round waits for its slowest row: that is the cost the single-pass engine removes.
Multi-token end-of-thinking delimiters are not supported here (s1 stops on token ids too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from thinkscale.infer.engines import Finished, OnToken, Request, SamplingConfig, replay_events
from thinkscale.infer.forcing import ForcingTokens, RowState
from thinkscale.infer.hf_engine import left_pad

# generate(seqs, max_new, min_new, stop) -> the new token ids of each sequence
GenerateFn = Callable[[list[list[int]], int, int, list[int]], list[list[int]]]


def hf_generate_fn(model, pad_token_id: int = 0) -> Callable[[SamplingConfig], GenerateFn]:
    """s1's call: HF `model.generate` on left-padded token ids, greedy."""

    def for_sampling(sampling: SamplingConfig) -> GenerateFn:
        def generate(seqs, max_new, min_new, stop):
            ids, mask = left_pad(seqs, pad_token_id)
            width = ids.shape[1]
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new,
                min_new_tokens=min_new,
                eos_token_id=stop,
                pad_token_id=pad_token_id,
                do_sample=False,
            )
            return [row[width:].tolist() for row in out]

        return generate

    return for_sampling


def _cut(new: list[int], stop: set[int], limit: int) -> tuple[list[int], int | None]:
    """Tokens before the first stop token (and within `limit`), and that stop token if any."""
    for j, t in enumerate(new[:limit]):
        if t in stop:
            return new[:j], t
    return new[:limit], None


class MultiRoundEngine:
    """s1's method behind the engine protocol; `generate_fn(sampling)` gives the backend's
    generate call (HF: `hf_generate_fn`; vLLM: `VLLMEngine.generate_fn`)."""

    def __init__(
        self,
        tokens: ForcingTokens,
        batch_size: int = 16,
        generate_fn: Callable[[SamplingConfig], GenerateFn] | None = None,
        max_positions: int | None = None,
    ):
        self.max_positions = max_positions  # the backend's context, when known
        if len(tokens.end_think) > 1:
            raise ValueError("multi-round forcing needs a single-token end-of-thinking delimiter")
        self.tokens, self.batch_size, self.generate_fn = tokens, batch_size, generate_fn

    @torch.inference_mode()
    def run(
        self,
        requests: Iterable[Request],
        sampling: SamplingConfig = SamplingConfig(),
        on_token: OnToken | None = None,
    ) -> Iterator[Finished]:
        if not sampling.greedy:
            raise ValueError(
                "multi-round forcing is implemented for greedy decoding (s1's headline setting)"
            )
        generate = self.generate_fn(sampling)
        tokens = self.tokens
        rows = [(r, s) for r in requests for s in r.samples]
        think_stop = sorted(tokens.stop | set(tokens.end_think))
        answer_stop = sorted(tokens.stop)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            states = [RowState(tokens, r.budget) for r, _ in chunk]
            caps = [r.budget.thinking_cap for r, _ in chunk]
            ended = [None] * len(chunk)  # the token that ended thinking, or None when capped
            live = list(range(len(chunk))) if tokens.thinks else []
            round_no = 0
            while live:  # thinking rounds
                seqs = [chunk[i][0].prompt_ids + states[i].generated for i in live]
                left = [caps[i] - states[i].thinking_tokens for i in live]
                min_new = max(
                    1 if round_no else 0,
                    max(chunk[i][0].budget.min_thinking_tokens - states[i].thinking_tokens
                        for i in live),
                )  # fmt: skip
                outs = generate(seqs, max(left), min(min_new, min(left)), think_stop)
                still = []
                for i, new, budget_left in zip(live, outs, left):
                    st = states[i]
                    kept, stop_tok = _cut(new, set(think_stop), budget_left)
                    st.append_thinking(kept)
                    ended[i] = stop_tok
                    if stop_tok is not None and st.waits < chunk[i][0].budget.num_ignore:
                        st.append_wait()
                        if st.thinking_tokens < caps[i]:
                            still.append(i)
                        else:
                            ended[i] = None
                live = still
                round_no += 1
            seqs = []
            for i, st in enumerate(states):  # the answer delimiter, as the single pass forces it
                if tokens.thinks:
                    st.end_thinking(ended[i])
                seqs.append(chunk[i][0].prompt_ids + st.generated)
            max_answer = max(r.budget.max_answer_tokens for r, _ in chunk)
            outs = generate(seqs, max_answer, 0, answer_stop)
            for i, new in enumerate(outs):
                st, (request, sample) = states[i], chunk[i]
                kept, stop_tok = _cut(new, set(answer_stop), request.budget.max_answer_tokens)
                st.append_answer(kept, stopped=stop_tok is not None)
                fin = Finished(request, sample, st)
                if on_token is not None:
                    replay_events(fin, on_token)
                yield fin


def run_multiround(
    model,
    tokens: ForcingTokens,
    requests: list[Request],
    sampling: SamplingConfig = SamplingConfig(),
    batch_size: int = 16,
    pad_token_id: int = 0,
    generate_fn: Callable[[SamplingConfig], GenerateFn] | None = None,
) -> list[Finished]:
    """All finished samples of s1's method at once, on `model` (HF) or a given `generate_fn`."""
    fn = generate_fn or hf_generate_fn(model, pad_token_id)
    return list(MultiRoundEngine(tokens, batch_size, fn).run(requests, sampling))
