"""Benchmarks: one small class each. Adding a task is adding one class to TASKS."""

from __future__ import annotations

from thinkscale import ThinkscaleError
from thinkscale.tasks.arith import Arith, ArithEasy, ArithHard, ArithMul
from thinkscale.tasks.base import Example, Task
from thinkscale.tasks.builtin import GSM8K, MATH, MATH500, SVAMP, MMLUStem, SATMath
from thinkscale.tasks.custom import FactualQA, FileTask, QuestionsTask

TASKS: dict[str, type[Task]] = {
    "gsm8k": GSM8K, "math500": MATH500, "math": MATH, "arith": Arith, "arith-mul": ArithMul, "arith-easy": ArithEasy, "arith-hard": ArithHard,
    "mmlu-stem": MMLUStem, "sat-math": SATMath, "svamp": SVAMP, "factual-qa": FactualQA,
}  # fmt: skip
# shown in --help: how many questions each holds (its test split)
TASK_SIZES = {"gsm8k": 1319, "math500": 500, "math": 5000, "arith": 825, "arith-mul": 533, "arith-easy": 30, "arith-hard": 200, "mmlu-stem": 3018,
              "sat-math": 32, "svamp": 1000, "factual-qa": 40}  # fmt: skip


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ThinkscaleError(f"unknown task '{name}' (choose from {', '.join(TASKS)})") from None


__all__ = ["Example", "Task", "FileTask", "QuestionsTask", "TASKS", "get_task"]
