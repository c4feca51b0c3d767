"""Benchmarks: one small class each. Adding a task is adding one class to TASKS."""

from __future__ import annotations

from thinkscale import ThinkscaleError
from thinkscale.tasks.arith import Arith
from thinkscale.tasks.base import Example, Task
from thinkscale.tasks.builtin import GSM8K, MATH, MATH500
from thinkscale.tasks.custom import FileTask, QuestionsTask

TASKS: dict[str, type[Task]] = {"gsm8k": GSM8K, "math500": MATH500, "math": MATH, "arith": Arith}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ThinkscaleError(f"unknown task '{name}' (choose from {', '.join(TASKS)})") from None


__all__ = ["Example", "Task", "FileTask", "QuestionsTask", "TASKS", "get_task"]
