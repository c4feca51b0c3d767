"""Losses thinkscale adds to TRL's trainers, as pure functions of tensors (testable by hand).

- `degrpo_loss`: Thinkless' decoupled GRPO. Per token, the clipped surrogate max(-A r, -A clip(r))
  (plus beta x the k3 KL estimate when a reference model is used); the CONTROL term is its mean
  over the control-token positions (position 0 of every response), the RESPONSE term its mean
  over all other response tokens of the batch (the token mean of Thinkless' code; the paper
  writes a per-sequence mean); loss = alpha x control + response. Without the split, a long
  think response has hundreds of tokens and a short one a handful, so the single mode token's
  gradient is drowned or swung by length; alpha sets its own pace. Rows of groups whose rewards
  were all equal (`live` = 0) are dropped from both terms: they carry no signal.
"""

from __future__ import annotations

import torch


def clipped_surrogate(
    logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> torch.Tensor:  # fmt: skip
    """Per-token PPO/GRPO surrogate loss, -min(r A, clip(r, 1-eps_low, 1+eps_high) A), (B, T)."""
    a = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    ratio = torch.exp(logps - old_logps)
    return -torch.min(ratio * a, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * a)


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference) estimate exp(q - p) - (q - p) - 1 (GRPO's)."""
    d = ref_logps - logps
    return torch.exp(d) - d - 1


def degrpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    live: torch.Tensor | None = None,
    alpha: float = 0.001,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    beta: float = 0.0,
    ref_logps: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, stats) of decoupled GRPO. `logps`, `old_logps`, `mask`: (B, T) over the response
    tokens, position 0 the control token; `advantages`: (B,) reward - group mean; `live`: (B,)
    1 for rows of groups with unequal rewards (default: all)."""
    per_token = clipped_surrogate(logps, old_logps, advantages, eps_low, eps_high)
    kl = None
    if beta and ref_logps is not None:
        kl = k3_kl(logps, ref_logps)
        per_token = per_token + beta * kl
    m = mask.to(per_token.dtype)
    if live is not None:
        m = m * live.to(per_token.dtype).unsqueeze(1)
    control_mask = torch.zeros_like(m)
    control_mask[:, 0] = m[:, 0]
    response_mask = m.clone()
    response_mask[:, 0] = 0
    control = (per_token * control_mask).sum() / control_mask.sum().clamp(min=1.0)
    response = (per_token * response_mask).sum() / response_mask.sum().clamp(min=1.0)
    stats = {"control_loss": float(control.detach()), "response_loss": float(response.detach()),
             "live_share": float(m[:, 0].sum() / max(mask.shape[0], 1))}  # fmt: skip
    if kl is not None:
        stats["kl"] = float((kl * m).sum() / m.sum().clamp(min=1.0))
    return alpha * control + response, stats
