"""One engine protocol: requests in, finished samples out, token events on the side.

Three engines implement it: the HF engine (`hf_engine.HFEngine`, budget forcing inside one
continuously batched decode loop), the vLLM engine (`vllm_engine.VLLMEngine`, forcing in a logits
processor) and s1's multi-round method (`multiround.MultiRoundEngine`, on either backend). They
are pure token ids; prompts and decoding stay with the caller. `make_engine` picks and loads one
from a `GenerateConfig` (or wraps a model already in memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from thinkscale import ThinkscaleError
from thinkscale.infer.forcing import ANSWER, THINK, Budget, ForcingTokens, RowState

if TYPE_CHECKING:
    from thinkscale.infer.generate import GenerateConfig

ENGINES = ("hf", "vllm", "auto")
FORCINGS = ("single-pass", "multi-round")


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class Request:
    key: object  # handed back with each finished sample
    prompt_ids: list[int]
    budget: Budget
    samples: list[int] = field(default_factory=lambda: [0])  # sample indices to generate
    seeds: list[int] | None = None  # one per sample; reproducible regardless of batch layout
    # a server's requests differ in these; a batch job's take the run's (HF engine)
    sampling: SamplingConfig | None = None
    tokens: ForcingTokens | None = None  # e.g. another Wait text
    cancelled: bool = False  # set from another thread: the engine drops the request's rows
    stopped: set[int] = field(default_factory=set)  # samples to drop (a server's stop string)

    def dropped(self, sample: int) -> bool:
        return self.cancelled or sample in self.stopped

    def seed_of(self, sample: int, sampling: SamplingConfig) -> int:
        return self.seeds[self.samples.index(sample)] if self.seeds else sampling.seed + sample


@dataclass
class Finished:
    request: Request
    sample: int
    state: RowState


@dataclass(frozen=True)
class TokenEvent:
    """One token fed to a sample. `rollback`: that many earlier tokens of this sample left the
    context first (a multi-token end-of-thinking delimiter that was replaced by Wait)."""

    request: Request
    sample: int
    token: int
    forced: bool  # budget forcing put it there (delimiter, Wait, answer prefix), not the model
    phase: str  # think | answer, or mode (a hybrid model's control token)
    rollback: int = 0


OnToken = Callable[[TokenEvent], None]


class Engine(Protocol):
    def run(
        self,
        requests: Iterable[Request],
        sampling: SamplingConfig = SamplingConfig(),
        on_token: OnToken | None = None,
    ) -> Iterator[Finished]:
        """Generate every sample of every request; yield each as soon as it is finished."""
        ...


def replay_events(fin: Finished, on_token: OnToken) -> None:
    """Token events of a finished sample, from its state: for engines that learn a sample's
    tokens a round or a whole output at a time."""
    st = fin.state
    end = st.think_end_index if st.think_end_index is not None else len(st.generated)
    for i in range(len(st.generated)):
        phase = THINK if i < end else ANSWER
        on_token(TokenEvent(fin.request, fin.sample, st.generated[i], st.forced[i], phase))


def resolve_engine(name: str) -> str:
    """`auto`: vLLM when it is installed, else the HF engine."""
    if name not in ENGINES:
        raise ThinkscaleError(f"--engine must be one of {', '.join(ENGINES)}, got {name!r}")
    if name == "auto":
        from thinkscale.infer.vllm_engine import vllm_available

        return "vllm" if vllm_available() else "hf"
    return name


def preflight(cfg: GenerateConfig) -> str:
    """What can fail before a model loads, checked before any output exists: the model path, a
    hybrid format's control tokens, and a format the vLLM engine cannot force. Returns the
    checkpoint path."""
    from thinkscale.models import resolve_model_path

    path = str(resolve_model_path(cfg.model))
    if cfg.think_format().hybrid:  # a model that never learned the control tokens
        from thinkscale.models import check_format_tokens, load_tokenizer

        check_format_tokens(load_tokenizer(path), cfg.think_format().added_tokens, path)
    if resolve_engine(cfg.engine) == "vllm":
        from thinkscale.infer.forcing import ForcingTokens
        from thinkscale.infer.vllm_engine import check_format
        from thinkscale.models import load_tokenizer

        check_format(ForcingTokens.from_tokenizer(load_tokenizer(path), cfg.think_format(), cfg.wait))
    return path


def make_engine(cfg: GenerateConfig, model=None, tokenizer=None) -> tuple[Engine, object]:
    """The engine `cfg` asks for (`engine`, `forcing`), on `model` or on `cfg.model` loaded from
    local files; returns (engine, tokenizer)."""
    from thinkscale.infer.forcing import ForcingTokens

    name = resolve_engine(cfg.engine)
    if name == "vllm":
        from thinkscale.infer.vllm_engine import VLLMEngine, load_llm

        if model is None:
            longest_cap = max(Budget(b, max_total_tokens=cfg.max_total_tokens).thinking_cap
                              for b, _ in cfg.grid())  # fmt: skip
            model = load_llm(preflight(cfg), cfg.dtype, cfg.max_num_seqs or cfg.batch_size,
                             max_model_len=cfg.max_model_len or longest_cap + cfg.max_answer_tokens + 1024,
                             **cfg.vllm_args())  # fmt: skip
        if tokenizer is None:
            tokenizer = model.get_tokenizer()
        tokens = ForcingTokens.from_tokenizer(tokenizer, cfg.think_format(), wait=cfg.wait)
        # several vLLM processes (tensor / pipeline / data parallel): the processor runs in
        # workers, so forced positions come back through processed log-probs
        engine = VLLMEngine(model, tokens, side_channel=False if cfg.vllm_processes > 1 else None)
        if cfg.forcing == "multi-round":
            from thinkscale.infer.multiround import MultiRoundEngine

            return MultiRoundEngine(tokens, cfg.batch_size, engine.generate_fn, engine.max_positions), tokenizer
        return engine, tokenizer
    if model is None:
        from thinkscale.models import load_model

        model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
    elif tokenizer is None:
        raise ThinkscaleError("a model given as an object needs its tokenizer too")
    tokens = ForcingTokens.from_tokenizer(tokenizer, cfg.think_format(), wait=cfg.wait)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if cfg.forcing == "multi-round":
        from thinkscale.infer.multiround import MultiRoundEngine, hf_generate_fn

        context = getattr(model.config, "max_position_embeddings", None)
        return MultiRoundEngine(tokens, cfg.batch_size, hf_generate_fn(model, pad), context), tokenizer
    from thinkscale.infer.hf_engine import HFEngine

    return HFEngine(model, tokens, cfg.batch_size, pad, compile=cfg.compile), tokenizer
