"""Losses thinkscale adds to TRL's trainers, as pure functions of tensors (testable by hand).

- `degrpo_loss`: Thinkless' decoupled GRPO. Per token, the clipped surrogate max(-A r, -A clip(r))
  (plus beta x the k3 KL estimate when a reference model is used); the CONTROL term is its mean
  over the control-token positions (position 0 of every response), the RESPONSE term its mean
  over all other response tokens of the batch (the token mean of Thinkless' code; the paper
  writes a per-sequence mean); loss = alpha x control + response. Without the split, a long
  think response has hundreds of tokens and a short one a handful, so the single mode token's
  gradient is drowned or swung by length; alpha sets its own pace. Rows of groups whose rewards
  were all equal (`live` = 0) are dropped from both terms: they carry no signal.
- `pass_at_n_weight` / `pass_at_n_loss`: refine's confidence-limited SFT. Each example's cross-entropy
  is scaled by F_N(p) (detached), which turns the gradient of -log p into that of
  -log(1 - (1-p)^N) = -log pass@N: an example the model already gets right (p -> 1) stops pulling
  its probability up, so it is not made over-confident at the expense of the others.
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


SERIES_BELOW = 0.1  # refine's code switches to its rational series when N*p is below this


def refine_series(p: torch.Tensor, n: int) -> torch.Tensor:
    """refine's rational approximation of F_N for small N p (its code uses it below N p = 0.1)."""
    m = n - 1
    return (1 - m * p + m * (m - 1) * p**2 / 2) / (1 - m * p / 2 + m * (m - 1) * p**2 / 6)


def pass_at_n_weight(p: torch.Tensor, n: int) -> torch.Tensor:
    """F_N(p) = N p (1-p)^(N-1) / (1 - (1-p)^N), in float64: 1 at N = 1 and at p = 0, -> 0 as
    p -> 1. refine's code computes 1 - (1-p)^N directly, which cancels for small p, so below
    N p = 0.1 it switches to `refine_series`, whose error (~1e-4 at the switch) makes F jump there.
    Here the denominator is -expm1(N log1p(-p)), exact for every p > 0, so the closed form is used
    throughout (it agrees with the series below the switch to the series' own accuracy)."""
    p = p.detach().to(torch.float64).clamp(0.0, 1.0)
    if n == 1:
        return torch.ones_like(p)
    closed = n * p * (1 - p) ** (n - 1) / -torch.expm1(n * torch.log1p(-p))  # p = 1: 0 / 1
    return torch.where(p > 0, closed, torch.ones_like(p))


def pass_at_n_loss(
    logits: torch.Tensor, labels: torch.Tensor, n: int, p: torch.Tensor | None = None,
    num_items: int | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
    """(loss, stats): sum over examples of F_N(p_i) x example i's summed token cross-entropy,
    divided by the batch's label-token count (`num_items`: over all accumulated micro-batches,
    as TRL's SFT loss is), so at N = 1 it IS plain SFT's loss. `labels` (B, T) are already
    aligned with `logits` (B, T, V) (-100 = no loss); `p` (B,) overrides the reference's
    likelihood exp(sum log p) (refine's sampled p-hat)."""
    mask = labels != -100
    logps = -torch.nn.functional.cross_entropy(
        logits.to(torch.promote_types(logits.dtype, torch.float32)).transpose(1, 2), labels.masked_fill(~mask, 0),
        reduction="none",
    ) * mask
    seq_logp = logps.sum(1)
    if p is None:
        p = seq_logp.detach().double().exp()
    weight = pass_at_n_weight(p, n).to(logps.dtype)
    denom = mask.sum() if num_items is None else num_items
    loss = (weight * -seq_logp).sum() / denom
    return loss, {"weight": weight.detach(), "p": p.detach().double()}
