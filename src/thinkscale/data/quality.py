"""s1's quality filters: traces an API failed to produce, references to images the model never
sees, ASCII-art diagrams, inconsistent question numbering, empty or too-short traces.
Each filter is a named function; the first that fires is the drop reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least

API_ERROR_PATTERNS = (
    r"\bapi\s*error\b",
    r"\berror code:\s*\d{3}\b",
    r"\brate limit(ed)?\b",
    r"\binternal server error\b",
    r"\bservice unavailable\b",
    r"\brequest (timed out|failed)\b",
    r"\bmaximum context length\b",
    r"\bcontent[_ ]filter\b",
    r"\bopenai\.\w*error\b",
)
# a picture the model never sees: markdown/HTML images, Asymptote code, "the figure below"
IMAGE_PATTERNS = (
    r"!\[[^\]]*\]\([^)]*\)",
    r"<img\b",
    r"\[asy\]",
    r"\b(see|in|shown in) the (figure|diagram|image|picture) (below|above)\b",
)
ART_CHARS = set("|+-_=/\\*#<>^~.:")


@dataclass
class QualityConfig:
    filters: list[str] = field(default_factory=lambda: list(FILTERS))
    min_thinking_words: int = 3  # fewer words of thinking: too_short_trace
    asy_sources: list[str] = field(default_factory=lambda: ["aime"])  # sources where [asy] stays
    art_lines: int = 3  # this many consecutive diagram-like lines make ASCII art

    def validate(self) -> None:
        check_at_least(self, 0, "min_thinking_words")
        check_at_least(self, 1, "art_lines")
        unknown = [f for f in self.filters if f not in FILTERS]
        if unknown:
            raise ThinkscaleError(
                f"unknown quality filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}"
            )


def api_error(row: dict, cfg: QualityConfig) -> bool:
    text = f"{row.get('thinking', '')}\n{row.get('answer', '')}".lower()
    return any(re.search(p, text) for p in API_ERROR_PATTERNS)


def image_reference(row: dict, cfg: QualityConfig) -> bool:
    text = f"{row['question']}\n{row.get('thinking', '')}"
    patterns = IMAGE_PATTERNS
    if str(row.get("source", "")).lower() in {s.lower() for s in cfg.asy_sources}:
        patterns = tuple(p for p in patterns if p != r"\[asy\]")
    return any(re.search(p, text, flags=re.IGNORECASE) for p in patterns)


def _diagram_line(line: str) -> bool:
    chars = line.replace(" ", "")
    if len(chars) < 3:
        return False
    art = sum(c in ART_CHARS for c in chars)
    return art / len(chars) >= 0.6 or bool(
        re.search(r"[|+]\s{2,}[|+]|[-_=]{4,}\+|\+[-_=]{4,}", line)
    )


def ascii_art(row: dict, cfg: QualityConfig) -> bool:
    for text in (row["question"], row.get("thinking", "")):
        run = 0
        for line in text.splitlines():
            run = run + 1 if _diagram_line(line) else 0
            if run >= cfg.art_lines:
                return True
    return False


def inconsistent_numbering(row: dict, cfg: QualityConfig) -> bool:
    """Numbered parts at line starts ('1.', '(2)', '3)') must count 1, 2, 3, ... without gaps."""
    numbers = [
        int(m.group(1) or m.group(2))
        for m in re.finditer(r"(?m)^\s*(?:\((\d{1,2})\)|(\d{1,2})[.)])\s", row["question"])
    ]
    if len(numbers) < 2:
        return False
    return numbers != list(range(numbers[0], numbers[0] + len(numbers))) or numbers[0] not in (0, 1)


def empty_trace(row: dict, cfg: QualityConfig) -> bool:
    return not str(row.get("thinking", "")).strip() or not str(row.get("answer", "")).strip()


def too_short_trace(row: dict, cfg: QualityConfig) -> bool:
    return len(str(row.get("thinking", "")).split()) < cfg.min_thinking_words


FILTERS: dict[str, Callable[[dict, QualityConfig], bool]] = {
    "api_error": api_error,
    "empty_trace": empty_trace,
    "too_short_trace": too_short_trace,
    "image_reference": image_reference,
    "ascii_art": ascii_art,
    "inconsistent_numbering": inconsistent_numbering,
}


def quality_reason(row: dict, cfg: QualityConfig) -> str | None:
    """The name of the first filter that drops `row`, or None to keep it."""
    return next((name for name in cfg.filters if FILTERS[name](row, cfg)), None)


class QualityFilter(BaseFilter):
    name = "quality"

    def __init__(self, cfg: QualityConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.cfg = cfg

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        reason = quality_reason({"question": doc.text, **doc.metadata}, self.cfg)
        return True if reason is None else (False, reason)
