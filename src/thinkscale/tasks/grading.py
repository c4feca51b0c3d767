"""Graders, and a process pool that runs them with a per-item timeout.

math-verify times out with SIGALRM, which works only on a main thread; each pool worker runs it on
its own main thread, and the pool adds a wall-clock timeout on top so grading never hangs.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import re
import string
import sys
from collections import Counter
from collections.abc import Callable, Sequence

GradeFn = Callable[[str | None, str], bool]


def numeric_equal(pred: str | None, gold: str) -> bool:
    from thinkscale.tasks.extract import normalize_number

    if pred is None:
        return False
    p, g = normalize_number(pred), normalize_number(gold)
    if p is None or g is None:
        return False
    return abs(float(p) - float(g)) <= 1e-6 * max(1.0, abs(float(g)))


def _as_latex(text: str) -> str:
    text = text.strip()
    return text if "$" in text or "\\boxed" in text else f"${text}$"


def math_equal(pred: str | None, gold: str) -> bool:
    """math-verify, gold first (verify is not symmetric)."""
    if pred is None or not pred.strip():
        return False
    import logging

    from math_verify import parse, verify

    # math-verify logs the whole input when it times out (60 KB for a pathological answer)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    try:
        gold_parsed = parse(_as_latex(gold), parsing_timeout=5)
        pred_parsed = parse(_as_latex(pred), parsing_timeout=5)
        if verify(gold_parsed, pred_parsed, timeout_seconds=5):
            return True
    except Exception:  # a grader crash is a wrong answer, never a crashed run
        pass
    return pred.strip() == gold.strip()


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCTUATION = set(string.punctuation) | set("‘’“”–—…")


def qa_equal(pred: str | None, gold: str) -> bool:
    """Exact match after SQuAD normalisation (a short factual answer, fs1)."""
    return pred is not None and normalize_answer(pred) == normalize_answer(gold) != ""


def qa_f1(pred: str | None, gold: Gold) -> float:
    """SQuAD token F1, best over the accepted answers."""
    if pred is None:
        return 0.0
    best = 0.0
    for g in gold if isinstance(gold, list) else [gold]:
        p, t = normalize_answer(pred).split(), normalize_answer(str(g)).split()
        common = sum((Counter(p) & Counter(t)).values())
        if common:
            precision, recall = common / len(p), common / len(t)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def choice_equal(pred: str | None, gold: str) -> bool:
    """The chosen letter is the gold letter."""
    return pred is not None and pred.strip().upper() == str(gold).strip().upper()


GRADERS: dict[str, GradeFn] = {
    "numeric": numeric_equal, "math": math_equal, "qa": qa_equal, "choice": choice_equal,
}  # fmt: skip
CHEAP = ("numeric", "qa", "choice")  # graded in-process: no parser that can hang

Gold = str | list[str]  # a list: accepted answers (aliases); any one of them is right


def grade(kind: str, pred: str | None, gold: Gold) -> bool:
    golds = gold if isinstance(gold, list) else [gold]
    return any(GRADERS[kind](pred, str(g)) for g in golds)


def _grade_one(kind: str, pred: str | None, gold: Gold) -> bool:
    return grade(kind, pred, gold)


def _exit_with_parent(parent: int) -> None:
    """Pool initializer: a worker whose parent was killed (SIGKILL skips cleanup) exits too."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


class GradingPool:
    """Grades (kind, pred, gold) triples in worker processes; a hung item counts as wrong."""

    def __init__(self, workers: int = 2, timeout: float = 20.0):
        self.workers = max(1, workers)
        self.timeout = timeout
        self._pool: cf.ProcessPoolExecutor | None = None

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def grade(
        self, items: Sequence[tuple[str, str | None, Gold]], ids: Sequence[str] | None = None
    ) -> list[bool]:
        """`ids` name the items in the one line logged for an item that hangs or crashes."""
        results: list[bool] = [False] * len(items)
        pending: list[int] = []
        for i, (kind, pred, gold) in enumerate(items):
            if pred is None:
                results[i] = False
            elif kind in CHEAP:  # no worker needed
                results[i] = grade(kind, pred, gold)
            else:
                pending.append(i)
        while pending:
            pool = self._executor()
            futures = [(i, pool.submit(_grade_one, *items[i])) for i in pending]
            pending = []
            for pos, (i, fut) in enumerate(futures):
                try:
                    results[i] = bool(fut.result(timeout=self.timeout))
                except (cf.TimeoutError, cf.process.BrokenProcessPool) as e:
                    results[i] = False  # a hung or crashed item counts as wrong
                    what = f"timed out after {self.timeout:g}s" if isinstance(e, cf.TimeoutError) else "crashed the grader"
                    name = ids[i] if ids is not None else f"item {i}"
                    print(f"warning: grading {name}: {what}; counted wrong", file=sys.stderr)
                    self._restart()
                    pending = [j for j, _ in futures[pos + 1 :]]  # resubmit the rest
                    break
        return results

    def equivalent(self, kind: str, a: str, b: str) -> bool:
        return self.grade([(kind, a, b)])[0]

    def _restart(self) -> None:
        if self._pool is not None:
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> GradingPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
