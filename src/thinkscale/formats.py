"""Think/answer templates shared by every stage (inference, training, eval).

A format says how an assistant turn is laid out: where thinking starts, which text ends it,
and what is forced before the answer when thinking is cut. It imports no stage.

- s1:    <|im_start|>think\\n{thinking}\\n<|im_start|>answer\\nAnswer: {answer}
- r1:    <think>\\n{thinking}\\n</think>\\n\\n{answer}
- plain: {answer}   (no thinking phase)
- hybrid (Thinkless): a control token opens the turn and says whether the model thinks:
         <think>\n{thinking}\n</think>\n\n{answer}   or   <short>\n{answer}
  The model chooses (`--mode auto`: the prompt ends at the assistant header, no mode token
  pre-filled), or the prompt forces one (`--mode think|short`). `<think>`, `</think>` and
  `<short>` are added to the tokenizer as ordinary tokens (one id each; `train sft --format
  hybrid` does it).
- custom: {think_start}{thinking}\n{think_end}\n{answer_prefix}{answer}, the delimiters given by
  the user (`--think-start '<reasoning>' --think-end '</reasoning>'`) for models trained elsewhere
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

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
    short_start: str = ""  # hybrid: what opens a short answer (the mode's control token + newline)
    added_tokens: tuple[str, ...] = ()  # tokens a model must have as one id each (added by SFT)

    @property
    def thinks(self) -> bool:
        return bool(self.think_end)

    @property
    def hybrid(self) -> bool:
        """The model chooses per question whether to think (a control token opens its turn)."""
        return bool(self.short_start)

    def mode_start(self, mode: str | None) -> str:
        """What the prompt ends with: the think start, or for hybrid the forced mode's opening
        (`auto`: nothing, the model writes its control token itself)."""
        if not self.hybrid:
            return self.think_start
        return {"think": self.think_start, "short": self.short_start}.get(mode or AUTO, "")

    @property
    def label(self) -> str:
        """What records store as `format`: the name, and a custom format's delimiters (resuming
        with other delimiters is another experiment)."""
        if self.name != CUSTOM:
            return self.name
        return f"{CUSTOM} {json.dumps([self.think_start, self.think_end, self.answer_prefix])}"

    def render_prompt(
        self, tokenizer, question: str, system: str | None = None, mode: str | None = None
    ) -> str:
        """The full prompt text: chat template with the generation prompt, then the think start
        (hybrid: the forced mode's control token, or nothing when the model chooses)."""
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question}
        ]
        return self.render_chat(tokenizer, messages, mode)

    def render_chat(self, tokenizer, messages: list[dict], mode: str | None = None) -> str:
        """A whole conversation (a server's `messages`) ending in the assistant's turn, opened
        with the think start. Without a chat template: a plain Q/A layout of the last message."""
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:  # base models without a template
            text = f"Question: {messages[-1]['content']}\nAnswer: "
        return text + self.mode_start(mode)

    def render_assistant(self, thinking: str, answer: str, mode: str | None = None) -> str:
        """The assistant turn as training data lays it out (what loss is computed on). Hybrid:
        `mode` think or short (default: short when there is no thinking); the control token is
        the first token of the turn, so it is inside the loss."""
        if self.hybrid and (mode or ("think" if thinking.strip() else "short")) == "short":
            return f"{self.short_start}{answer}"
        if not self.thinks:
            return f"{self.answer_prefix}{answer}"
        return (
            f"{self.think_start}{thinking.strip()}\n{self.answer_start}{self.answer_prefix}{answer}"
        )

    def forced_answer(self) -> str:
        """What budget forcing appends to end thinking: delimiter, then the answer prefix."""
        return self.answer_start + self.forced_answer_prefix

    def chosen_mode(self, completion: str) -> str:
        """Hybrid: the mode a completion's leading control token chose (none: it wrote neither)."""
        for mode, start in (("short", self.short_start), ("think", self.think_start)):
            if completion.startswith(start.rstrip("\n")):
                return mode
        return "none"

    def split(self, completion: str, mode: str | None = None) -> tuple[str, str]:
        """Split generated text (after the prompt) into (thinking, answer). Hybrid: `mode` is
        the mode the sample ran in (think | short | none); without it, the leading control token
        says. A completion with no control token has thinking only up to a `</think>` it wrote."""
        if not self.thinks:
            return "", completion.strip()
        text = completion
        if self.hybrid:
            short, think = self.short_start.rstrip("\n"), self.think_start.rstrip("\n")
            mode = mode or self.chosen_mode(text)
            if mode == "short":
                return "", text.removeprefix(short).strip()
            if mode == "think":
                text = text.removeprefix(think)
            else:  # no control token: thinking only up to a `</think>` it wrote
                idx = text.find(self.think_end)
                if idx < 0:
                    return "", text.strip()
                return text[:idx].strip(), text[idx + len(self.think_end) :].strip()
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

# hybrid: r1's thinking layout, plus the short mode; the control tokens are added to the tokenizer
FORMATS["hybrid"] = replace(FORMATS["r1"], name="hybrid", short_start="<short>\n",
                            added_tokens=("<think>", "</think>", "<short>"))  # fmt: skip

CUSTOM = "custom"
FORMAT_NAMES = (*FORMATS, CUSTOM)
AUTO = "auto"
MODES = (AUTO, "think", "short")  # hybrid: the model chooses, or the prompt forces one
CHOSEN_MODES = ("think", "short", "none")  # what a hybrid sample did (none: no control token)

# ChatML that neither pre-fills a mode nor strips thinking from assistant turns: what a hybrid
# model's tokenizer carries when its own template does either (Thinkless' users hit both)
HYBRID_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}"
    "{% endif %}"
)


def check_hybrid_template(tokenizer, fmt: ThinkFormat) -> str | None:
    """Make the tokenizer's chat template fit a hybrid model: the generation prompt must end at
    the assistant header (a pre-filled `<think>` means the model never learns to choose) and an
    assistant turn must keep its thinking verbatim. A template that breaks either is replaced by
    HYBRID_CHAT_TEMPLATE; returns why (None: kept)."""
    user = [{"role": "user", "content": "Q"}]
    turn = fmt.render_assistant("T", "A", mode="think")
    problems = []
    try:
        prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": turn}], tokenize=False)
    except Exception as e:  # no template, or one that raises on this layout
        problems.append(f"it cannot render the turn ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
    else:
        if any(prompt.rstrip().endswith(t) for t in fmt.added_tokens):
            problems.append("its generation prompt pre-fills a mode token")
        if turn not in full:
            problems.append("it rewrites the assistant turn (strips thinking)")
        elif not full.startswith(prompt.rstrip()):
            problems.append("the prompt is not a prefix of the conversation")
    if not problems:
        return None
    tokenizer.chat_template = HYBRID_CHAT_TEMPLATE
    return "replaced the chat template with ChatML: " + "; ".join(problems)


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
                         help="think/answer template; hybrid: Thinkless' <think>/<short> control tokens (the "
                         "model chooses, or --mode forces one); custom: give --think-start and --think-end")  # fmt: skip
    think_start: str | None = option(None, help="--format custom: the text that opens thinking")
    think_end: str | None = option(None, help="--format custom: the text that closes thinking")
    answer_prefix: str = option("", help="--format custom: the text before the answer (e.g. 'Answer: ')")

    def think_format(self) -> ThinkFormat:
        return get_format(self.format, self.think_start, self.think_end, self.answer_prefix)

    def checked_modes(self, modes: list[str] | None) -> tuple[ThinkFormat, list[str] | None]:
        """The format and the hybrid modes to run (`--mode`; auto when none is given), or None
        for a format without modes; `--mode` with such a format, or an unknown mode, is an error."""
        fmt = self.think_format()
        if not fmt.hybrid:
            if modes is not None:
                raise ThinkscaleError(f"--mode applies to --format hybrid (a model that chooses whether to "
                                      f"think); --format {self.format} has no modes")  # fmt: skip
            return fmt, None
        bad = [m for m in modes or [AUTO] if m not in MODES]
        if bad or modes == []:
            raise ThinkscaleError(f"--mode must be one of {', '.join(MODES)}, got {bad[0] if bad else 'nothing'}")
        return fmt, modes or [AUTO]
