"""Think/answer templates shared by every stage (inference, training, eval).

A format says how an assistant turn is laid out: where thinking starts, which text ends it,
and what is forced before the answer when thinking is cut. It imports no stage.

- s1:    <|im_start|>think\\n{thinking}\\n<|im_start|>answer\\nAnswer: {answer}
- r1:    <think>\\n{thinking}\\n</think>\\n\\n{answer}
- plain: {answer}   (no thinking phase)
- custom: {think_start}{thinking}\n{think_end}\n{answer_prefix}{answer}, the delimiters given by
  the user (`--think-start '<reasoning>' --think-end '</reasoning>'`) for models trained elsewhere
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from thinkscale import ThinkscaleError
from thinkscale.configs import option


@dataclass(frozen=True)
class ThinkFormat:
    name: str
    think_start: str  # appended after the chat template's assistant header
    think_end: str  # the text whose appearance ends thinking
    answer_start: str  # the whole delimiter between thinking and answer (starts with think_end)
    answer_prefix: str  # what training data puts before the answer
    forced_answer_prefix: str  # what inference forces after a cut, so an answer follows

    @property
    def thinks(self) -> bool:
        return bool(self.think_end)

    @property
    def label(self) -> str:
        """What records store as `format`: the name, and a custom format's delimiters (resuming
        with other delimiters is another experiment)."""
        if self.name != CUSTOM:
            return self.name
        return f"{CUSTOM} {json.dumps([self.think_start, self.think_end, self.answer_prefix])}"

    def render_prompt(self, tokenizer, question: str, system: str | None = None) -> str:
        """The full prompt text: chat template with the generation prompt, then the think start."""
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question}
        ]
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:  # base models without a template: a plain Q/A layout
            text = f"Question: {question}\nAnswer: "
        return text + self.think_start

    def render_assistant(self, thinking: str, answer: str) -> str:
        """The assistant turn as training data lays it out (what loss is computed on)."""
        if not self.thinks:
            return f"{self.answer_prefix}{answer}"
        return (
            f"{self.think_start}{thinking.strip()}\n{self.answer_start}{self.answer_prefix}{answer}"
        )

    def forced_answer(self) -> str:
        """What budget forcing appends to end thinking: delimiter, then the answer prefix."""
        return self.answer_start + self.forced_answer_prefix

    def split(self, completion: str) -> tuple[str, str]:
        """Split generated text (after the prompt) into (thinking, answer)."""
        if not self.thinks:
            return "", completion.strip()
        text = completion
        if text.startswith(self.think_start):
            text = text[len(self.think_start) :]
        idx = text.find(self.answer_start)
        if idx >= 0:
            return text[:idx].strip(), text[idx + len(self.answer_start) :].strip()
        idx = text.find(self.think_end)
        if idx >= 0:
            return text[:idx].strip(), text[idx + len(self.think_end) :].strip()
        return text.strip(), ""


FORMATS: dict[str, ThinkFormat] = {
    "s1": ThinkFormat(
        name="s1",
        think_start="<|im_start|>think\n",
        think_end="<|im_start|>",
        answer_start="<|im_start|>answer\n",
        answer_prefix="Answer: ",
        forced_answer_prefix="Final Answer:",
    ),
    "r1": ThinkFormat(
        name="r1",
        think_start="<think>\n",
        think_end="</think>",
        answer_start="</think>\n\n",
        answer_prefix="",
        forced_answer_prefix="Final Answer:",
    ),
    "plain": ThinkFormat(
        name="plain",
        think_start="",
        think_end="",
        answer_start="",
        answer_prefix="",
        forced_answer_prefix="",
    ),
}


CUSTOM = "custom"
FORMAT_NAMES = (*FORMATS, CUSTOM)


def custom_format(think_start: str | None, think_end: str | None, answer_prefix: str = "") -> ThinkFormat:
    """A think/answer layout from its delimiters (multi-token ones included)."""
    if not think_start or not think_start.strip() or not think_end or not think_end.strip():
        raise ThinkscaleError("--format custom needs --think-start and --think-end (non-empty text)")
    if think_end in think_start:
        raise ThinkscaleError(f"--think-end {think_end!r} must not occur in --think-start {think_start!r}")
    return ThinkFormat(
        name=CUSTOM,
        think_start=think_start,
        think_end=think_end,
        answer_start=f"{think_end}\n",
        answer_prefix=answer_prefix,
        forced_answer_prefix=answer_prefix.rstrip() or "Final Answer:",
    )


def get_format(
    name: str, think_start: str | None = None, think_end: str | None = None, answer_prefix: str = ""
) -> ThinkFormat:
    """A built-in format by name, or `custom` from the delimiters given."""
    if name == CUSTOM:
        return custom_format(think_start, think_end, answer_prefix)
    if think_start is not None or think_end is not None:
        raise ThinkscaleError(f"--think-start/--think-end define --format custom, not '{name}'")
    try:
        return FORMATS[name]
    except KeyError:
        raise ThinkscaleError(
            f"unknown format '{name}' (choose from {', '.join(FORMAT_NAMES)})"
        ) from None


@dataclass
class FormatConfig:
    """The format fields every command that renders prompts shares (flags: --format, ...)."""

    format: str = option("s1", choices=lambda: FORMAT_NAMES,
                         help="think/answer template; custom: give --think-start and --think-end")  # fmt: skip
    think_start: str | None = option(None, help="--format custom: the text that opens thinking")
    think_end: str | None = option(None, help="--format custom: the text that closes thinking")
    answer_prefix: str = option("", help="--format custom: the text before the answer (e.g. 'Answer: ')")

    def think_format(self) -> ThinkFormat:
        return get_format(self.format, self.think_start, self.think_end, self.answer_prefix)
