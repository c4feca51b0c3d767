"""Temperature, top-k and top-p, once: the HF engine draws from this distribution, and the vLLM
forcing processor asks it how likely an end of thinking is."""

from __future__ import annotations

import torch


def filtered_logits(
    logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, token ids) of the tokens that stay, sorted by logit, over the last dimension;
    dropped ones are -inf. With top-k set, top-p works on the k best only (no full sort)."""
    logits = logits / temperature
    k = top_k if 0 < top_k < logits.shape[-1] else logits.shape[-1]
    values, index = torch.topk(logits, k, dim=-1)  # sorted, descending
    if top_p < 1.0:
        probs = values.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the token that crosses top_p
        values = values.masked_fill(drop, float("-inf"))
    return values, index
