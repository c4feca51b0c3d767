"""The DoT backbone: a transformers Llama run with bidirectional attention, and its tokenizer.

A masked-diffusion LM is a plain transformer that sees the whole sequence: no new model class is
needed. Llama takes a prepared 4D attention mask as is (transformers' masking utilities return a
4D mask unchanged), so passing one that lets every position see every real token turns the
causal decoder into a bidirectional denoiser. The same class, run causally, is the
autoregressive baseline; and a pretrained causal checkpoint (the embedded SmolLM2) can be the
starting point of a diffusion model, as DiffuLLaMA-style adaptation does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from thinkscale import ThinkscaleError
from thinkscale.dot.data import ANSWER_SEP, SRC_SEP, TEXT_THOUGHT_SEP

PAD, MASK, EOS, UNK = "<pad>", "<mask>", "<eos>", "<unk>"
DOT_FILE = "dot.json"
SEPARATORS = [SRC_SEP, ANSWER_SEP, TEXT_THOUGHT_SEP]  # always single tokens


@dataclass
class DotMeta:
    """What sampling needs to know about a trained DoT checkpoint (saved as dot.json)."""

    objective: str  # diffusion | ar
    task: str
    gen_length: int  # target tokens (chain + answer + EOS padding) the sampler denoises
    thought_sep: str
    train_seconds: float | None = None
    train_steps: int | None = None


def build_tokenizer(kind: str, texts, vocab_size: int = 2048):
    """`word`: one token per whitespace-separated word (digits, `*`, `+`, `||`: the implicit-CoT
    vocabulary); `bpe`: a byte-level BPE trained on the texts (GSM8K). Both are transformers
    fast tokenizers, saved with the model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, MASK, EOS, UNK, *SEPARATORS]
    if kind == "word":
        words = sorted({w for t in texts for w in t.split()} - set(specials))
        vocab = {w: i for i, w in enumerate(specials + words)}
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
    else:
        raise ThinkscaleError(f"unknown tokenizer kind '{kind}' (word or bpe)")
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, mask_token=MASK, eos_token=EOS, unk_token=UNK,
        additional_special_tokens=SEPARATORS,
    )  # fmt: skip


def add_dot_tokens(tokenizer) -> int:
    """Give a pretrained tokenizer a mask token and the thought separator; returns how many
    tokens were added (the embeddings are resized by that much)."""
    added = 0
    if tokenizer.mask_token is None:
        added += tokenizer.add_special_tokens({"mask_token": MASK})
    added += tokenizer.add_special_tokens({"additional_special_tokens": SEPARATORS})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return added


def new_backbone(vocab_size: int, hidden_size: int, layers: int, heads: int, intermediate_size: int,
                 max_positions: int, tokenizer):  # fmt: skip
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % heads:
        raise ThinkscaleError(f"--hidden-size {hidden_size} is not a multiple of --heads {heads}")
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def bidirectional_mask(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, L, L) additive mask: every position attends to every real (non-pad) token."""
    blocked = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    blocked[~key_mask.bool()] = torch.finfo(dtype).min
    return blocked[:, None, None, :].expand(-1, 1, key_mask.shape[1], -1)


def positions(key_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at the first real token (sequences are left-padded)."""
    return (key_mask.long().cumsum(-1) - 1).clamp(min=0)


def denoise_logits(model, input_ids: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """One bidirectional forward pass: logits for every position."""
    dtype = next(model.parameters()).dtype
    out = model(input_ids=input_ids, attention_mask=bidirectional_mask(key_mask, dtype),
                position_ids=positions(key_mask), use_cache=False)  # fmt: skip
    return out.logits


def source_text(question: str) -> str:
    return f"{question} {SRC_SEP}"


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def save_meta(path: Path, meta: DotMeta) -> None:
    from thinkscale.records import write_json_atomic

    write_json_atomic(Path(path) / DOT_FILE, asdict(meta))


def load_dot(path: str | Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer, meta) of a DoT checkpoint written by `thinkscale dot train`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / DOT_FILE).exists():
        raise ThinkscaleError(f"{path}: not a DoT checkpoint (no {DOT_FILE}; train one with `thinkscale dot train`)")
    meta = DotMeta(**json.loads((path / DOT_FILE).read_text()))
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True).eval()
    return model, tokenizer, meta


def separator_id(tokenizer, text: str) -> int:
    """The one token id of a separator (`||`, `####`, a thought separator)."""
    for variant in (f" {text}", text):
        ids = encode(tokenizer, variant)
        if len(ids) == 1:
            return ids[0]
    raise ThinkscaleError(f"separator {text!r} is not a single token of this tokenizer")
