"""One choice's text as its tokens arrive: reasoning and content that only ever grow.

A stream cannot take text back, but the engine can: an ignored multi-token end of thinking
leaves the context, and a delimiter is only recognisable once complete (s1's
`<|im_start|>answer\\n` is several tokens). So the text whose tail could still become a
delimiter (or a stop string) is held back until it cannot; what is sent is then always a prefix
of the final reasoning / content, which are exactly what `generate`'s records hold (the same
decode and the same `ThinkFormat.split`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thinkscale.formats import ThinkFormat
from thinkscale.infer.engines import TokenEvent
from thinkscale.infer.forcing import THINK


def held(text: str, prefixes_of: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `prefixes_of`."""
    best = 0
    for word in prefixes_of:
        for k in range(min(len(word) - 1, len(text)), best, -1):
            if text.endswith(word[:k]):
                best = k
                break
    return best


def cut_at_stop(content: str, stops: list[str]) -> tuple[str, bool]:
    """Content up to the first stop string (excluded), and whether one occurred."""
    hits = [i for i in (content.find(s) for s in stops) if i >= 0]
    return (content[: min(hits)], True) if hits else (content, False)


@dataclass
class ChoiceText:
    tokenizer: object
    fmt: ThinkFormat
    stops: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    thinking_tokens: int = 0
    sent_reasoning: str = ""
    sent_content: str = ""
    sent_raw: str = ""
    stopped: bool = False  # a stop string ended the content
    stop_raw: bool = False  # /v1/completions: stop strings cut the raw text, not only the answer

    def add(self, ev: TokenEvent) -> None:
        if ev.rollback:
            del self.ids[-ev.rollback :]
            self.thinking_tokens -= ev.rollback
        self.ids.append(ev.token)
        self.thinking_tokens += ev.phase == THINK

    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=False)

    def split(self, text: str, mode: str | None = None, final: bool = False) -> tuple[str, str, str]:
        """(reasoning, content, raw) of `text`; not final: without a tail that could still grow
        into a delimiter or a stop string."""
        if not final:
            delims = (self.fmt.answer_start, self.fmt.think_end) if self.fmt.thinks else ()
            text = text[: len(text) - held(text, tuple(d for d in delims if d))]
        if self.stop_raw:
            text, hit = cut_at_stop(text, self.stops)
            if not hit and not final and self.stops:
                text = text[: len(text) - held(text, tuple(self.stops))]
            reasoning, content = self.fmt.split(text, mode)
        else:
            reasoning, content = self.fmt.split(text, mode)
            content, hit = cut_at_stop(content, self.stops)
            if not hit and not final and self.stops:
                content = content[: len(content) - held(content, tuple(self.stops))]
        self.stopped = self.stopped or hit
        return reasoning, content, text

    def deltas(self, mode: str | None = None, final: bool = False) -> tuple[str, str, str]:
        """What to send now: (reasoning delta, content delta, raw-text delta). A part that no
        longer extends what was sent (a tokenizer re-spelling its tail) sends nothing."""
        text = self.text()
        if not final and text.endswith("\ufffd"):  # half a character: wait for the next token
            return "", "", ""
        reasoning, content, raw = self.split(text, mode, final)
        out = []
        for name, now in (("sent_reasoning", reasoning), ("sent_content", content), ("sent_raw", raw)):
            before = getattr(self, name)
            if now.startswith(before) and len(now) > len(before):
                out.append(now[len(before) :])
                setattr(self, name, now)
            else:
                out.append("")
        return out[0], out[1], out[2]
