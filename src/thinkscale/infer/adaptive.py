"""Adaptive thinking: end thinking once the answer is settled, judged by probes in the one pass.

Published early-exit methods (Dynasor-CoT: a probe every 64 thinking tokens, stop when the last
k probe answers agree and the last shows no hesitation; DEER: a trial answer at each "Wait",
stop when its confidence >= 0.95) send each probe as a separate request, which re-prefills the
whole context. Here a probe is a branch of the row inside the engine's decode loop (`RowState`'s
`probe` phase): the format's forced answer text, then up to `tokens` greedy answer tokens, fed
on top of the row's own KV cache; when it ends the engine takes its tokens back out of the
cache (the same masking that drops a rejected multi-token delimiter), so the row continues
exactly as if the probe had never run, and nothing is prefilled again. The row waits while its
probe decodes (as in Dynasor); other rows of the batch do not.

This module holds the rule (what the state machine consults) and what turns a probe's tokens
into an answer; the phase itself lives with the other phases in `forcing.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

ADAPTIVE_KINDS = ("consistency", "confidence")
# Dynasor-CoT's hesitation words: a probe answer that contains one is not taken as settled
HESITATION = re.compile(r"\b(wait|hold|but|okay|no|hmm)\b", re.IGNORECASE)

# a probe's answer tokens -> (the extracted answer or None, whether the text hesitates)
ProbeReader = Callable[[list[int]], tuple[str | None, bool]]


@dataclass(frozen=True)
class AdaptiveRule:
    """When thinking may end early. `read` is per request (it knows the question's task)."""

    kind: str  # consistency | confidence
    every: int = 64  # a probe every this many thinking tokens
    tokens: int = 20  # answer tokens a probe may decode (after the forced answer text)
    agree: int = 3  # consistency: this many equal, non-empty probe answers in a row
    confidence: float = 0.95  # confidence: the probe's mean answer-token probability
    read: ProbeReader | None = field(default=None, compare=False)

    @property
    def on_wait(self) -> bool:
        """DEER probes at transition points too: where the model itself starts a `Wait`."""
        return self.kind == "confidence"

    def label(self) -> str:
        """How records name the setting (one results file holds one)."""
        tail = f"agree {self.agree}" if self.kind == "consistency" else f"at {self.confidence:g}"
        return f"{self.kind} every {self.every} tokens {self.tokens} {tail}"


@dataclass
class Probe:
    """One probe of a row: where it branched, what it fed and answered."""

    at: int  # the row's thinking tokens when it branched
    ids: list[int] = field(default_factory=list)  # forced answer text, then greedy answer tokens
    forced: int = 0  # how many of `ids` were forced
    probs: list[float] = field(default_factory=list)  # probability of each greedy answer token
    answer: str | None = None
    hesitant: bool = False

    @property
    def answer_ids(self) -> list[int]:
        return self.ids[self.forced :]

    @property
    def confidence(self) -> float:
        return sum(self.probs) / len(self.probs) if self.probs else 0.0


def settled(rule: AdaptiveRule, probes: list[Probe]) -> bool:
    """Has the answer settled after the latest probe? Consistency: the last `agree` answers are
    equal and non-empty and the last does not hesitate. Confidence: the last answer is non-empty
    and its tokens' mean probability reaches the threshold."""
    last = probes[-1]
    if not last.answer:
        return False
    if rule.kind == "confidence":
        return last.confidence >= rule.confidence
    recent = probes[-rule.agree :]
    return len(recent) == rule.agree and all(p.answer == last.answer for p in recent) and not last.hesitant


def probe_reader(tokenizer, extract: Callable[[str], str | None]) -> ProbeReader:
    """A reader for one question: decode the probe's answer tokens, extract as the task does."""

    def read(ids: list[int]) -> tuple[str | None, bool]:
        text = tokenizer.decode(ids, skip_special_tokens=True)
        return extract(text), bool(HESITATION.search(text))

    return read
