"""s1's multi-round budget forcing: repeated `generate` calls on token ids, for comparison.

Round 0 thinks until an end-of-thinking token or the cap; each extension round appends `Wait` and
calls `generate` again with `min_new_tokens=1`; then the answer delimiter is appended and a last
call decodes the answer. Token ids are re-fed (never text), so there is no re-tokenization drift.
Unlike s1's harness, every round gets only the budget that is left, so thinking never exceeds the
cap. Each round waits for its slowest row: that is the cost the single-pass engine removes.
Multi-token end-of-thinking delimiters are not supported here (s1 stops on token ids too).
"""

from __future__ import annotations

import torch

from thinkscale.infer.engine import Finished, Request, SamplingConfig, left_pad
from thinkscale.infer.forcing import ANSWER, DONE, ForcingTokens, RowState


def _generate(model, seqs: list[list[int]], max_new: int, min_new: int, stop: list[int], pad: int):
    ids, mask = left_pad(seqs, pad)
    width = ids.shape[1]
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new,
        min_new_tokens=min_new,
        eos_token_id=stop,
        pad_token_id=pad,
        do_sample=False,
    )
    return [row[width:].tolist() for row in out]


def _cut(new: list[int], stop: set[int], limit: int) -> tuple[list[int], int | None]:
    """Tokens before the first stop token (and within `limit`), and that stop token if any."""
    for j, t in enumerate(new[:limit]):
        if t in stop:
            return new[:j], t
    return new[:limit], None


@torch.inference_mode()
def run_multiround(
    model,
    tokens: ForcingTokens,
    requests: list[Request],
    sampling: SamplingConfig = SamplingConfig(),
    batch_size: int = 16,
    pad_token_id: int = 0,
    generate_fn=None,
) -> list[Finished]:
    """`generate_fn(seqs, max_new, min_new, stop) -> new token lists` is the engine's generate call
    (default: HF `model.generate`; the vLLM engine passes its own)."""
    if generate_fn is None:
        generate_fn = lambda seqs, max_new, min_new, stop: _generate(  # noqa: E731
            model, seqs, max_new, min_new, stop, pad_token_id
        )
    if not sampling.greedy:
        raise ValueError(
            "multi-round forcing is implemented for greedy decoding (s1's headline setting)"
        )
    if len(tokens.end_think) > 1:
        raise ValueError("multi-round forcing needs a single-token end-of-thinking delimiter")
    rows = [(r, s) for r in requests for s in r.samples]
    think_stop = sorted(tokens.stop | set(tokens.end_think))
    answer_stop = sorted(tokens.stop)
    done: list[Finished] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        states = [RowState(tokens, r.budget) for r, _ in chunk]
        caps = [r.budget.max_thinking_tokens or r.budget.max_total_tokens for r, _ in chunk]
        ended = [None] * len(chunk)  # the token that ended thinking, or None when capped
        live = list(range(len(chunk))) if tokens.thinks else []
        round_no = 0
        while live:  # thinking rounds
            seqs = [chunk[i][0].prompt_ids + states[i].generated for i in live]
            left = [caps[i] - states[i].thinking_tokens for i in live]
            min_new = max(
                1 if round_no else 0,
                max(
                    chunk[i][0].budget.min_thinking_tokens - states[i].thinking_tokens for i in live
                ),
            )
            outs = generate_fn(seqs, max(left), min(min_new, min(left)), think_stop)
            still = []
            for i, new, budget_left in zip(live, outs, left):
                st = states[i]
                kept, stop_tok = _cut(new, set(think_stop), budget_left)
                st.generated += kept
                st.forced += [False] * len(kept)
                st.thinking_tokens += len(kept)
                ended[i] = stop_tok
                if stop_tok is not None and st.waits < chunk[i][0].budget.num_ignore:
                    room = caps[i] - st.thinking_tokens
                    wait = list(tokens.wait[:room])
                    st.waits += 1
                    st.generated += wait
                    st.forced += [True] * len(wait)
                    st.thinking_tokens += len(wait)
                    if st.thinking_tokens < caps[i]:
                        still.append(i)
                    else:
                        ended[i] = None
            live = still
            round_no += 1
        seqs = []
        for i, st in enumerate(states):  # the answer delimiter, as the single pass forces it
            st.think_end_index = len(st.generated)
            if tokens.thinks:
                st.capped = ended[i] is None
                last = st.generated[-1] if st.generated else None
                forced = list(tokens.answer)
                if (
                    ended[i] not in tokens.end_think
                    and last is not None
                    and last not in tokens.ends_with_newline
                ):
                    forced = list(tokens.newline) + forced
                st.generated += forced
                st.forced += [ended[i] not in tokens.end_think] + [True] * (len(forced) - 1)
            st.phase = ANSWER
            seqs.append(chunk[i][0].prompt_ids + st.generated)
        max_answer = max(r.budget.max_answer_tokens for r, _ in chunk)
        outs = generate_fn(seqs, max_answer, 0, answer_stop)
        for i, new in enumerate(outs):
            st, (request, sample) = states[i], chunk[i]
            kept, stop_tok = _cut(new, set(answer_stop), request.budget.max_answer_tokens)
            st.generated += kept
            st.forced += [False] * len(kept)
            st.answer_tokens = len(kept)
            st.phase, st.finish_reason = DONE, "stop" if stop_tok is not None else "length"
            done.append(Finished(request, sample, st))
    return done
