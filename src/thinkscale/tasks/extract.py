"""Answer extraction, in s1's order: the answer segment, its last \\boxed{}, else its last `Answer:`."""

from __future__ import annotations

import re

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_MARKER_RE = re.compile(r"answer\s*(?:is)?\s*[:：]", re.IGNORECASE)
_NUMBER_RE = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (nested braces balanced), or of `\\boxed 5`."""
    matches = list(_BOX_RE.finditer(text))
    for m in reversed(matches):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j].strip()
                j += 1
            continue  # unbalanced: try an earlier box
        token = re.match(r"[^\s$]+", text[i:])
        if token:
            return token.group(0).strip()
    return None


def after_answer_marker(text: str) -> str | None:
    """The rest of the line after the last `Answer:` (also `Final Answer:`, `answer is:`)."""
    matches = list(_MARKER_RE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :].strip()
    line = rest.split("\n", 1)[0].strip()
    line = line.strip().rstrip(".").strip()
    if line.startswith("$") and line.endswith("$") and len(line) > 1:
        line = line.strip("$").strip()
    return line or None


def extract_math(answer: str) -> str | None:
    """A MATH-style prediction: boxed, else after `Answer:`."""
    if not answer:
        return None
    return last_boxed(answer) or after_answer_marker(answer)


def normalize_number(text: str) -> str | None:
    """`$1,234.50` -> `1234.5`; None when it is not a number."""
    s = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        value = float(s)
    except ValueError:
        return None
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def last_number(text: str) -> str | None:
    found = _NUMBER_RE.findall(text)
    for candidate in reversed(found):
        value = normalize_number(candidate)
        if value is not None:
            return value
    return None


def extract_number(answer: str) -> str | None:
    """A GSM8K-style prediction: the number in the boxed or `Answer:` part, else the last number."""
    if not answer:
        return None
    for part in (last_boxed(answer), after_answer_marker(answer)):
        if part:
            value = last_number(part)
            if value is not None:
                return value
    return last_number(answer)


def gsm8k_gold(solution: str) -> str:
    """GSM8K's gold is the text after `#### `."""
    tail = solution.rsplit("####", 1)[-1].strip()
    return normalize_number(tail) or tail


def extract_short(answer: str) -> str | None:
    """A short factual answer: the last \\boxed{}, else the last `Answer:` line, else the answer
    segment's first line (the format has already cut off the thinking)."""
    if not answer or not answer.strip():
        return None
    found = last_boxed(answer) or after_answer_marker(answer)
    if found:
        return found
    if _MARKER_RE.search(answer):
        return None  # `Final Answer:` and nothing after it: no answer
    line = next(ln for ln in answer.strip().splitlines() if ln.strip()).strip()
    return line.rstrip(".").strip() or None


def extract_for(grader: str, answer: str, choices: list[str] | None = None) -> str | None:
    """The prediction in an answer, the way its grader reads it."""
    if grader == "numeric":
        return extract_number(answer)
    if grader == "qa":
        return extract_short(answer)
    if grader == "choice":
        from thinkscale.tasks.choice import extract_choice

        return extract_choice(answer, choices)
    return extract_math(answer)
