"""`thinkscale serve`'s settings (apart from the app, so that the CLI builds its flags without
importing the HTTP stack)."""

from __future__ import annotations

from dataclasses import dataclass

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, option
from thinkscale.formats import FormatConfig
from thinkscale.models import DEFAULT_MODEL, DTYPES


@dataclass
class ServeConfig(FormatConfig):
    """What `thinkscale serve` runs. CLI flags mirror these fields."""

    model: str = option(DEFAULT_MODEL, help="embedded model name or a local HF checkpoint dir")
    engine: str = option("hf", choices=("hf", "vllm"), help="hf: continuous batching, requests join "
                         "the running batch; vllm: vLLM's generate in rounds (what arrived during a "
                         "round forms the next)")  # fmt: skip
    host: str = option("127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    port: int = option(8000)
    max_batch: int = option(16, help="rows decoded together")
    compile: bool | None = option(None, help="--engine hf: torch.compile the decode step (embedded model, 2 CPU "
                                  "cores: ~6 min, ~1 min on a restart; a lone request then decodes ~2.6x "
                                  "faster); default: on with --engine hf")  # fmt: skip
    compile_in_background: bool = option(True, help="with --compile: listen at once and answer meanwhile (each "
                                         "compiled graph serves once ready, the eager step until then); "
                                         "--no-compile-in-background listens only after compiling")  # fmt: skip
    max_queue: int = option(256, help="requests in flight (decoding or waiting) before new ones get HTTP 429")
    api_key: str | None = option(None, help="clients must send 'Authorization: Bearer KEY'")
    served_model_name: str | None = option(None, help="the model name clients send and /v1/models lists "
                                           "(default: --model)")  # fmt: skip
    dtype: str = option("auto", choices=DTYPES)
    wait: str = option("Wait", help="default text forced when an end of thinking is ignored")
    max_total_tokens: int = option(4096, help="thinking cap of a request that asks for none")

    def check(self) -> None:
        check_at_least(self, 1, "max_batch", "max_queue", "max_total_tokens")
        if self.compile and self.engine != "hf":  # asked for explicitly
            raise ThinkscaleError("--compile applies to --engine hf (the engine whose decode step it compiles)")
        if not 0 < self.port < 65536:
            raise ThinkscaleError(f"--port must be in 1..65535, got {self.port}")
        self.think_format()

    @property
    def compiles(self) -> bool:
        """A server decodes for its whole life, mostly at small batch: the compile pays back
        after a few thousand tokens (benchmarks/README.md), so it is on unless turned off."""
        return self.compile if self.compile is not None else self.engine == "hf"

    @property
    def name(self) -> str:
        return self.served_model_name or self.model
