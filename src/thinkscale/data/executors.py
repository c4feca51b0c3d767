"""Where datatrove runs a pipeline: this machine's processes (default), a Ray cluster, or Slurm.

Every call blocks until all tasks of the pipeline have finished, so stages run in order on any
executor; each executor skips ranks it already completed (its `logging_dir`), which is how a
stage resumes after a crash. Ray and Slurm need a filesystem shared by all nodes for `--out`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least

EXECUTORS = ("local", "ray", "slurm")


@dataclass
class ExecutorConfig:
    executor: str = "local"  # local | ray | slurm
    tasks: int = 2  # shards: datatrove tasks per stage
    workers: int = -1  # tasks running at once (-1: local = CPU count, ray/slurm = all)
    slurm_partition: str | None = None
    slurm_time: str = "04:00:00"
    cpus_per_task: int = 1
    verbose: bool = False  # datatrove's own logs on stderr (they are always in each stage's logs/)

    def validate(self) -> None:
        if self.executor not in EXECUTORS:
            raise ThinkscaleError(f"--executor must be one of {', '.join(EXECUTORS)}")
        check_at_least(self, 1, "tasks", "cpus_per_task")
        if self.workers == 0 or self.workers < -1:
            raise ThinkscaleError(f"--workers must be >= 1 (or -1: all), got {self.workers}")
        if self.executor == "slurm" and not self.slurm_partition:
            raise ThinkscaleError("--executor slurm needs --slurm-partition")


def run_pipeline(
    pipeline: list, logging_dir: Path, cfg: ExecutorConfig, tasks: int | None = None
) -> None:
    """Run `pipeline` as `tasks` datatrove tasks (default: cfg.tasks) and wait for all of them."""
    tasks = tasks or cfg.tasks
    if not cfg.verbose:
        _quiet_datatrove()
    common = {"pipeline": pipeline, "tasks": tasks, "logging_dir": str(logging_dir)}
    if cfg.executor == "local":
        from datatrove.executor import LocalPipelineExecutor

        workers = cfg.workers if cfg.workers > 0 else (os.cpu_count() or 1)
        executor = LocalPipelineExecutor(**common, workers=min(workers, tasks), start_method="fork")
        executor.run()
    elif cfg.executor == "ray":
        try:
            from datatrove.executor.ray import RayPipelineExecutor
        except ImportError:
            raise ThinkscaleError("--executor ray needs: pip install 'ray[default]'") from None
        RayPipelineExecutor(**common, workers=cfg.workers, cpus_per_task=cfg.cpus_per_task).run()
    else:
        from datatrove.executor import SlurmPipelineExecutor

        executor = SlurmPipelineExecutor(
            **common,
            workers=cfg.workers,
            time=cfg.slurm_time,
            partition=cfg.slurm_partition,
            cpus_per_task=cfg.cpus_per_task,
            job_name=f"thinkscale-{Path(logging_dir).parent.name}",
        )
        executor.run()  # submits a job array; wait here so the next stage sees finished shards
        while executor.get_incomplete_ranks():
            time.sleep(30)
    incomplete = _incomplete(logging_dir, tasks)
    if incomplete:
        raise ThinkscaleError(
            f"{logging_dir}: tasks {incomplete} did not finish (see the logs there); "
            "run the same command again to resume"
        )


def _quiet_datatrove() -> None:
    """Task logs go to files only (errors still reach stderr), and no stats dump per pipeline:
    datatrove resets its stderr sink after every task, so that reset is what gets replaced."""
    import sys

    import datatrove.executor.base as base
    from loguru import logger

    def quiet() -> None:
        logger.remove()
        logger.add(sys.stderr, level="ERROR")

    if not getattr(base.add_task_logger, "thinkscale_quiet", False):
        add_original, close_original = base.add_task_logger, base.close_task_logger

        def add_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
            return add_original(logging_dir, rank, local_rank=1, node_rank=node_rank)

        def close_task_logger(logfile) -> None:
            close_original(logfile)
            quiet()

        add_task_logger.thinkscale_quiet = True
        base.add_task_logger, base.close_task_logger = add_task_logger, close_task_logger
    quiet()


def _incomplete(logging_dir: Path, tasks: int) -> list[int]:
    done = Path(logging_dir) / "completions"
    return [r for r in range(tasks) if not (done / f"{r:05d}").exists()]
