"""DoT sampling: denoise the whole chain and answer in T steps; the question never changes.

Start from `gen_length` mask tokens after the question. Each step runs the bidirectional model
once over the sequence, proposes a token for every masked position (argmax, or a Gumbel draw at
`temperature`), and reveals the proposals at k of them: the most confident ones
(`order="confidence"`, low-confidence remasking as in LLaDA/MaskGIT) or random ones. The L
target positions are spread evenly over the T steps, so T=1 reveals everything in one pass and
T=L one token a step; T is the test-time compute knob (T forward passes per sample).

DoT-MP (`multipass`): one thought per pass; each pass denoises the rest of the sequence given
the question and the thoughts accepted so far, then keeps only its first thought (up to the
thought separator), until a pass reaches the answer.

Every sample draws from its own generator seeded by (seed, question id, sample index), so an
output does not depend on the batch it ran in: same seed, same output; resume is exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least
from thinkscale.dot.data import ANSWER_SEP
from thinkscale.dot.model import denoise_logits, encode, separator_id, source_text


@dataclass
class SampleConfig:
    steps: int = 64  # T: denoising steps (forward passes) per pass
    order: str = "confidence"  # confidence | random: which masked positions to reveal first
    block_length: int = 0  # > 0: LLaDA's semi-autoregressive blocks, left to right; 0 = one block
    temperature: float = 0.0  # 0 = argmax proposals
    multipass: bool = False  # DoT-MP: one thought per pass
    max_passes: int = 16
    n: int = 1  # samples per question (self-consistency votes over them)
    seed: int = 0
    batch_size: int = 64

    def validate(self) -> None:
        if not 1 <= self.steps <= 256:
            raise ThinkscaleError(f"--steps must be in 1..256, got {self.steps}")
        if self.order not in ("confidence", "random"):
            raise ThinkscaleError(f"--order must be confidence or random, got '{self.order}'")
        check_at_least(self, 0, "temperature", "block_length")
        check_at_least(self, 1, "n", "batch_size", "max_passes")


def row_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little") >> 1


def reveal_schedule(length: int, steps: int) -> list[int]:
    """How many positions each step reveals: `length` spread evenly over min(steps, length)."""
    steps = max(1, min(steps, length))
    base, extra = divmod(length, steps)
    return [base + (1 if s < extra else 0) for s in range(steps)]


def step_plan(length: int, steps: int, block_length: int = 0) -> list[tuple[int, int, int]]:
    """(block start, block end, positions to reveal) per forward pass. One block by default;
    with `block_length` the blocks run left to right and share the T steps evenly (at least one
    each), so a chain whose later tokens depend on earlier ones (carries) is written in order
    while each block is still denoised in parallel. len(plan) is the true number of passes."""
    block = block_length if 0 < block_length < length else length
    bounds = [(lo, min(lo + block, length)) for lo in range(0, length, block)]
    share = reveal_schedule(steps, len(bounds)) if steps >= len(bounds) else [1] * len(bounds)
    return [(lo, hi, k) for (lo, hi), t in zip(bounds, share) for k in reveal_schedule(hi - lo, t)]


@torch.no_grad()
def denoise(model, tokenizer, prefixes: list[list[int]], gen_length: int, steps: int, order: str,
            temperature: float, generators: list[torch.Generator], block_length: int = 0) -> list[list[int]]:  # fmt: skip
    """Fill `gen_length` masked positions after each prefix; returns the filled positions."""
    mask_id, pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id
    n = len(prefixes)
    src_len = max(len(p) for p in prefixes)
    ids = torch.full((n, src_len + gen_length), mask_id, dtype=torch.long)
    key_mask = torch.ones_like(ids, dtype=torch.bool)
    for i, p in enumerate(prefixes):
        ids[i, : src_len - len(p)] = pad_id
        key_mask[i, : src_len - len(p)] = False
        ids[i, src_len - len(p) : src_len] = torch.tensor(p, dtype=torch.long)
    for lo, hi, k in step_plan(gen_length, steps, block_length):
        logits = denoise_logits(model, ids, key_mask)[:, src_len:].float()
        logits[..., [mask_id, pad_id]] = float("-inf")  # never propose a mask or a pad
        masked = ids[:, src_len:] == mask_id
        probs = logits.softmax(-1)
        if temperature > 0:
            gumbel = torch.stack([-torch.log(-torch.log(
                torch.rand(logits.shape[1:], generator=g).clamp(1e-20, 1.0))) for g in generators])  # fmt: skip
            proposal = (logits / temperature + gumbel).argmax(-1)
        else:
            proposal = logits.argmax(-1)
        if order == "confidence":
            score = probs.gather(-1, proposal[..., None])[..., 0]
        else:
            score = torch.stack([torch.rand(gen_length, generator=g) for g in generators])
        outside = torch.ones(gen_length, dtype=torch.bool)
        outside[lo:hi] = False
        score = score.masked_fill(~masked | outside, -1.0)
        take = score.topk(k, dim=-1).indices  # k <= masked count by the schedule
        region = ids[:, src_len:]
        region.scatter_(1, take, proposal.gather(1, take))
    return [row.tolist() for row in ids[:, src_len:]]


def cut_at_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def sample_dot(model, tokenizer, meta, questions: list[tuple[str, str]], cfg: SampleConfig,
               progress=None) -> list[dict]:  # fmt: skip
    """Sample `cfg.n` outputs for each (id, question). Returns one dict per (question, sample):
    id, sample, text (chain and answer, decoded), tokens, passes, nfe (forward passes)."""
    cfg.validate()
    if meta.objective != "diffusion":
        raise ThinkscaleError("this checkpoint is autoregressive (objective ar): sample it with ar_generate")
    jobs = [(qid, s, q) for qid, q in questions for s in range(cfg.n)]
    seps = (separator_id(tokenizer, meta.thought_sep), separator_id(tokenizer, ANSWER_SEP)) if cfg.multipass else None
    results = []
    for start in range(0, len(jobs), cfg.batch_size):
        chunk = jobs[start : start + cfg.batch_size]
        gens = [torch.Generator().manual_seed(row_seed(cfg.seed, f"{qid}/{s}")) for qid, s, _ in chunk]
        src = [encode(tokenizer, source_text(q)) for _, _, q in chunk]
        if cfg.multipass:
            outs, passes = _multipass(model, tokenizer, meta, src, cfg, gens, *seps)
        else:
            outs = denoise(model, tokenizer, src, meta.gen_length, cfg.steps, cfg.order, cfg.temperature, gens,
                           cfg.block_length)  # fmt: skip
            passes = [1] * len(chunk)
        for (qid, s, _), toks, p in zip(chunk, outs, passes):
            toks = cut_at_eos(toks, tokenizer.eos_token_id)
            results.append({"id": qid, "sample": s, "tokens": toks, "passes": p,
                            "nfe": p * len(step_plan(meta.gen_length, cfg.steps, cfg.block_length)),
                            "text": tokenizer.decode(toks, skip_special_tokens=False)})  # fmt: skip
        if progress is not None:
            progress.update(len(chunk))
    return results


def _multipass(model, tokenizer, meta, src, cfg, gens, sep: int, answer_sep: int):
    """DoT-MP: accept one thought per pass, conditioned on the question and earlier thoughts."""
    eos = tokenizer.eos_token_id
    accepted = [[] for _ in src]
    passes = [0] * len(src)
    active = list(range(len(src)))
    while active:
        prefixes = [src[i] + accepted[i] for i in active]
        # the total length stays the model's: what is accepted comes out of the generated part
        length = meta.gen_length - min(len(accepted[i]) for i in active)
        outs = denoise(model, tokenizer, prefixes, length, cfg.steps, cfg.order, cfg.temperature,
                       [gens[i] for i in active], cfg.block_length)  # fmt: skip
        still = []
        for i, out in zip(active, outs):
            passes[i] += 1
            out = out[: meta.gen_length - len(accepted[i])]
            body = cut_at_eos(out, eos)
            body = body[: body.index(answer_sep)] if answer_sep in body else body
            if sep in body and passes[i] < cfg.max_passes:
                accepted[i] += body[: body.index(sep) + 1]
                still.append(i)
            else:  # the pass reached the answer (or the pass limit): keep all of it
                accepted[i] += out
        active = still
    return accepted, passes


@torch.no_grad()
def ar_generate(model, tokenizer, meta, questions: list[tuple[str, str]], batch_size: int = 64,
                progress=None) -> list[dict]:  # fmt: skip
    """Greedy left-to-right decoding for the AR baseline (KV cache, left padding, EOS stops)."""
    results = []
    pad = tokenizer.pad_token_id
    for start in range(0, len(questions), batch_size):
        chunk = questions[start : start + batch_size]
        src = [encode(tokenizer, source_text(q)) for _, q in chunk]
        width = max(map(len, src))
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in src])
        attn = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in src])
        out = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=meta.gen_length,
                             do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)  # fmt: skip
        for (qid, _), row in zip(chunk, out[:, width:].tolist()):
            toks = cut_at_eos(row, tokenizer.eos_token_id)
            results.append({"id": qid, "sample": 0, "tokens": toks, "passes": 1, "nfe": len(toks) + 1,
                            "text": tokenizer.decode(toks, skip_special_tokens=False)})  # fmt: skip
        if progress is not None:
            progress.update(len(chunk))
    return results
