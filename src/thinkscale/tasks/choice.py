"""Multiple choice (GPQA, MMLU): options as letters, the gold as a letter, extraction of the chosen
letter from free text, and a seeded per-question shuffle of the options.

Extraction looks, in order, for an explicit statement (`\\boxed{C}`, `Answer: C`, `(C)` after
"answer", "the answer is C", "option C"), then an answer that is a letter alone, then the text of
exactly one option, and last the last letter mentioned that reads as a letter (not the article
"A" or the pronoun "I"): "A and B are wrong, so C" is C."""

from __future__ import annotations

import random
import re
import zlib

from thinkscale import ThinkscaleError

LETTERS = "ABCDEFGHIJ"

_OPTION_RE = re.compile(r"(?:^|\s)(?:\(?([A-Ja-j])\)|([A-J])\.)\s+")  # `A) x`, `(a) x`, `A. x`
_LETTER = r"\(?([A-Ja-j])\)?"
_STATED = [
    re.compile(r"\\boxed\s*\{\s*\(?\s*([A-Ja-j])\s*\)?[^}]*\}"),
    re.compile(r"answer\s*(?:is|:|：)\s*(?:option\s*)?" + _LETTER + r"(?![A-Za-z])", re.I),
    re.compile(r"(?:correct|right|best)\s+(?:answer|option|choice)\s*(?:is|would be|:)?\s*(?:option\s*)?"
               + _LETTER + r"(?![A-Za-z])", re.I),  # fmt: skip
    re.compile(r"\b(?:option|choice)\s+" + _LETTER + r"(?![A-Za-z])\s*(?:is\s+(?:correct|right))", re.I),
    re.compile(r"\b(?:choose|select|pick)\s+(?:option\s*)?" + _LETTER + r"(?![A-Za-z])", re.I),
]
_ALONE = re.compile(r"^\s*\(?([A-Ja-j])\s*[).:]?\s*$")
_MENTION = re.compile(r"(?<![A-Za-z'’])\(?([A-J])\)?(?![A-Za-z'’])")


def options_from(value, where: str) -> list[str]:
    """Options from a field: a list of texts, a dict keyed by letter, or one string `A) .. B) ..`."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: str(k).upper())
        if [str(k).upper() for k in keys] != list(LETTERS[: len(keys)]):
            raise ThinkscaleError(f"{where}: option keys must be the letters A, B, C, ... in order, got {list(value)}")
        value = [value[k] for k in keys]
    if isinstance(value, str):
        parsed = parse_options(value)
        if parsed is None:
            raise ThinkscaleError(f"{where}: cannot read options from {value[:80]!r} (expected 'A) .. B) ..')")
        value = parsed
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ThinkscaleError(f"{where}: options must be a list of strings or a dict keyed A, B, ...")
    if not 2 <= len(value) <= len(LETTERS):
        raise ThinkscaleError(f"{where}: needs 2 to {len(LETTERS)} options, got {len(value)}")
    return [str(v).strip() for v in value]


def parse_options(text: str) -> list[str] | None:
    """`A) x B) y C) z` (or `(a) x (b) y`, one per line or inline) -> [x, y, z]; None if the
    letters are not A, B, C, ... in order."""
    marks = list(_OPTION_RE.finditer(text))
    if len(marks) < 2 or [_mark(m) for m in marks] != list(LETTERS[: len(marks)]):
        return None
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [text[m.end() : end].strip().rstrip(",").strip() for m, end in zip(marks, ends)]


def _mark(m: re.Match) -> str:
    return (m.group(1) or m.group(2)).upper()


def split_question_options(question: str) -> tuple[str, list[str]] | None:
    """A question whose options are written in it: (the stem, the options), or None."""
    marks = list(_OPTION_RE.finditer(question))
    for start in range(len(marks)):
        if _mark(marks[start]) == "A":
            options = parse_options(question[marks[start].start() :])
            if options:
                return question[: marks[start].start()].strip(), options
    return None


def gold_letter(gold, options: list[str], where: str) -> str:
    """The gold as a letter: a letter, a 0-based index, or the text of one option."""
    if isinstance(gold, bool):
        raise ThinkscaleError(f"{where}: must be a letter, a 0-based index or an option's text")
    if isinstance(gold, int):
        if not 0 <= gold < len(options):
            raise ThinkscaleError(f"{where}: index {gold} is outside the {len(options)} options")
        return LETTERS[gold]
    text = str(gold).strip()
    if len(text) == 1 and text.upper() in LETTERS:
        if text.upper() not in LETTERS[: len(options)]:
            raise ThinkscaleError(
                f"{where}: answer '{text}' is not one of the options {', '.join(LETTERS[: len(options)])}"
            )
        return text.upper()
    matches = [i for i, o in enumerate(options) if _norm(o) == _norm(text)]
    if len(matches) == 1:
        return LETTERS[matches[0]]
    raise ThinkscaleError(f"{where}: '{text[:60]}' is neither a letter of the options nor one option's text")


def shuffle(options: list[str], gold: str, seed: int, key: str) -> tuple[list[str], list[int], str]:
    """Options permuted by (seed, question id): (new options, original index of each, new gold)."""
    order = list(range(len(options)))
    random.Random(zlib.crc32(f"{seed}:{key}".encode())).shuffle(order)
    new_gold = LETTERS[order.index(LETTERS.index(gold))]
    return [options[i] for i in order], order, new_gold


def attach_options(meta: dict, options: list[str], gold: str, shuffled: bool, seed: int, key: str) -> str:
    """Put the options shown into `meta` (permuted by (seed, key) when `shuffled`, with the
    permutation as `choice_order`); returns the gold letter among them."""
    if shuffled:
        options, meta["choice_order"], gold = shuffle(options, gold, seed, key)
    meta["choices"] = options
    return gold


def render(question: str, options: list[str]) -> str:
    return question.rstrip() + "\n\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def extract_choice(answer: str, options: list[str] | None) -> str | None:
    """The chosen letter (upper case), or None when the answer names none of the options."""
    if not answer or not answer.strip():
        return None
    valid = LETTERS[: len(options)] if options else LETTERS
    ok = lambda c: c.upper() if c and c.upper() in valid else None  # noqa: E731
    for pattern in _STATED:
        found = [ok(m.group(1)) for m in pattern.finditer(answer)]
        found = [f for f in found if f]
        if found:
            return found[-1]
    m = _ALONE.match(answer.strip().splitlines()[0])
    if m and ok(m.group(1)):
        return ok(m.group(1))
    if options:
        said = _norm(answer)
        hits = [i for i, o in enumerate(options) if _norm(o) and _norm(o) == said]
        if not hits:
            hits = [i for i, o in enumerate(options) if len(_norm(o)) > 2 and re.search(rf"\b{re.escape(_norm(o))}\b", said)]
        if len(hits) == 1:
            return LETTERS[hits[0]]
    mentions = []
    for m in _MENTION.finditer(answer):
        letter, after = m.group(1), answer[m.end() : m.end() + 12]
        if letter in "AI" and not m.group(0).startswith("(") and re.match(r"\s+[a-z]", after) and not re.match(r"\s+(and|or|is|are)\b", after):
            continue  # the article "A cat", the pronoun "I think"
        if ok(letter):
            mentions.append(letter)
    return mentions[-1] if mentions else None
