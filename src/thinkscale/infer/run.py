"""generate / sweep: tasks x budgets x num_ignore -> graded records in an append-only JSONL.

Every (question, budget, num_ignore) of a sweep goes into ONE engine run, so short and long
requests share the batch and finished rows are replaced at once (continuous batching).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from thinkscale import ThinkscaleError
from thinkscale.formats import get_format
from thinkscale.infer.forcing import Budget, ForcingTokens
from thinkscale.infer.records import RecordWriter
from thinkscale.models import DEFAULT_MODEL
from thinkscale.tasks import FileTask, Task, get_task
from thinkscale.tasks.grading import GradingPool


@dataclass
class GenerateConfig:
    """What to generate. CLI flags mirror these fields."""

    task: str | None = "gsm8k"
    data: str | None = None  # a JSONL/parquet file instead of a built-in task
    question_field: str = "question"
    answer_field: str = "answer"
    id_field: str | None = None
    grader: str = "math"  # for --data: math (math-verify) or numeric
    limit: int | None = None
    n: int = 1  # samples per question
    budgets: list[int | None] = field(default_factory=lambda: [None])  # thinking caps in tokens
    num_ignores: list[int] = field(default_factory=lambda: [0])  # Waits forced per sample
    runs: list[tuple[int | None, int]] | None = (
        None  # explicit (budget, num_ignore) pairs instead of the grid
    )
    min_thinking: int = 0
    max_answer_tokens: int = 256
    max_total_tokens: int = 4096
    wait: str = "Wait"
    format: str = "s1"
    model: str = DEFAULT_MODEL
    engine: str = "hf"
    forcing: str = "single-pass"  # or multi-round (s1's repeated generate calls)
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    batch_size: int = 16
    dtype: str = "bfloat16"  # the embedded checkpoint's own precision; fast on CPUs with AMX/bf16

    def grid(self) -> list[tuple[int | None, int]]:
        if self.runs is not None:
            return [(b, k) for b, k in self.runs]
        return [(b, k) for b in self.budgets for k in self.num_ignores]

    def validate(self) -> None:
        for b, _ in self.grid():
            if b is not None and b <= 0:
                raise ThinkscaleError(
                    f"--budget must be a positive number of thinking tokens, got {b}"
                )
        for _, k in self.grid():
            if k < 0:
                raise ThinkscaleError(f"--num-ignore must be >= 0, got {k}")
        if self.n < 1:
            raise ThinkscaleError(f"--n must be >= 1, got {self.n}")
        if self.limit is not None and self.limit < 1:
            raise ThinkscaleError(f"--limit must be >= 1, got {self.limit}")
        if self.min_thinking < 0:
            raise ThinkscaleError(f"--min-thinking must be >= 0, got {self.min_thinking}")
        if self.n > 1 and self.temperature <= 0:
            raise ThinkscaleError("--n > 1 needs --temperature > 0 (greedy samples are identical)")
        if self.engine not in ("hf", "vllm", "auto"):
            raise ThinkscaleError(f"--engine must be hf, vllm or auto, got {self.engine}")
        if self.engine == "vllm":
            from thinkscale.infer.vllm_engine import vllm_available

            if not vllm_available():
                raise ThinkscaleError("--engine vllm needs vLLM: make install ENGINE=vllm")
        if self.forcing not in ("single-pass", "multi-round"):
            raise ThinkscaleError(
                f"--forcing must be single-pass or multi-round, got {self.forcing}"
            )
        if (self.task is None) == (self.data is None):
            raise ThinkscaleError("give exactly one of --task or --data")
        get_format(self.format)


def build_task(cfg: GenerateConfig) -> Task:
    if cfg.data:
        return FileTask(
            cfg.data, cfg.question_field, cfg.answer_field, cfg.id_field, grader=cfg.grader
        )
    return get_task(cfg.task)


def resolve_engine(name: str) -> str:
    """`auto`: vLLM when it is installed, else the HF engine."""
    if name == "auto":
        from thinkscale.infer.vllm_engine import vllm_available

        return "vllm" if vllm_available() else "hf"
    return name


def sample_seed(seed: int, example_id: str, sample: int) -> int:
    """A sample's seed depends on (seed, id, sample) only: the same across budgets and batches."""
    return zlib.crc32(f"{seed}/{example_id}/{sample}".encode())


def generate(
    cfg: GenerateConfig, out: str | Path, model=None, tokenizer=None, progress: bool = True
) -> Path:
    """Generate, grade and append records to `out`; keys already there are skipped."""
    cfg.validate()
    task = build_task(cfg)
    examples = task.load(cfg.limit)
    if not examples:
        raise ThinkscaleError(f"task '{task.name}' has no examples")
    engine_name = resolve_engine(cfg.engine)
    if model is None:
        from thinkscale.models import resolve_model_path

        path = str(resolve_model_path(cfg.model))  # fail on a bad path before any output exists
        if engine_name == "vllm":  # and on a format vLLM can't force, before the engine loads
            from transformers import AutoTokenizer

            from thinkscale.infer.vllm_engine import check_format

            tokenizer = AutoTokenizer.from_pretrained(path)
            check_format(ForcingTokens.from_tokenizer(tokenizer, get_format(cfg.format), cfg.wait))
    out = Path(out)
    writer = RecordWriter(out)
    try:
        check_settings(writer.records, out, task.name, {k: getattr(cfg, k) for k in SETTINGS})
    except ThinkscaleError:
        writer.close()
        raise
    todo = []  # (example, budget, num_ignore, samples not yet written)
    for budget, ni in cfg.grid():
        for ex in examples:
            samples = [
                s for s in range(cfg.n) if (task.name, ex.id, s, budget, ni) not in writer.done
            ]
            if samples:
                todo.append((ex, budget, ni, samples))
    total = sum(len(t[3]) for t in todo)
    if total == 0:
        writer.close()
        print(f"{out}: all {len(writer.done)} records already present; nothing to do")
        return out
    if model is None and engine_name == "vllm":
        from thinkscale.infer.vllm_engine import load_llm

        longest_cap = max((b if b is not None else cfg.max_total_tokens) for b, _ in cfg.grid())
        model = load_llm(path, cfg.dtype, cfg.batch_size,
                         max_model_len=longest_cap + cfg.max_answer_tokens + 1024)  # fmt: skip
    elif model is None:
        from thinkscale.models import load_model

        model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
    fmt = get_format(cfg.format)
    tokens = ForcingTokens.from_tokenizer(tokenizer, fmt, wait=cfg.wait)

    from thinkscale.infer.engine import HFEngine, Request, SamplingConfig

    requests = []
    for ex, budget, ni, samples in todo:
        prompt = fmt.render_prompt(tokenizer, task.prompt(ex))
        requests.append(
            Request(
                key=(ex, budget, ni),
                prompt_ids=tokenizer.encode(prompt, add_special_tokens=False),
                budget=Budget(
                    budget, ni, cfg.min_thinking, cfg.max_answer_tokens, cfg.max_total_tokens
                ),
                samples=samples,
                seeds=[sample_seed(cfg.seed, ex.id, s) for s in samples],
            )
        )
    sampling = SamplingConfig(cfg.temperature, cfg.top_p, cfg.top_k, cfg.seed)
    bar = tqdm(total=total, desc=f"{task.name} generate", unit="sample", disable=not progress)
    pending: list[dict] = []
    with GradingPool(workers=1) as grader:

        def flush() -> None:
            verdicts = grader.grade([(task.grader, r["pred"], r["gold"]) for r in pending])
            for rec, ok in zip(pending, verdicts):
                rec["correct"] = ok
                writer.write(rec)
            pending.clear()

        def on_finish(fin) -> None:
            ex, budget, ni = fin.request.key
            pending.append(to_record(fin, ex, budget, ni, task, fmt, tokenizer, cfg))
            bar.update(1)
            if len(pending) >= cfg.batch_size:
                flush()

        try:
            if engine_name == "vllm":
                from thinkscale.infer.vllm_engine import VLLMEngine

                engine = VLLMEngine(model, tokens)
                if cfg.forcing == "multi-round":
                    from thinkscale.infer.multiround import run_multiround

                    for fin in run_multiround(None, tokens, requests, sampling, cfg.batch_size,
                                              generate_fn=engine.generate_fn(sampling)):  # fmt: skip
                        on_finish(fin)
                else:
                    engine.run(requests, sampling, on_finish=on_finish)
            elif cfg.forcing == "multi-round":
                from thinkscale.infer.multiround import run_multiround

                for fin in run_multiround(
                    model, tokens, requests, sampling, cfg.batch_size, tokenizer.pad_token_id
                ):
                    on_finish(fin)
            else:
                engine = HFEngine(model, tokens, cfg.batch_size, tokenizer.pad_token_id)
                engine.run(requests, sampling, on_finish=on_finish)
            flush()
        finally:
            bar.close()
            writer.close()
    return out


# settings that change what a record means: resuming with other values would mix two experiments
SETTINGS = ("model", "format", "temperature", "seed", "min_thinking", "forcing")


def check_settings(records: list[dict], out: Path, task: str, mine: dict) -> None:
    """Refuse to resume a results file whose records of this task were made with other settings
    (`mine`: setting name -> value, as the records store them)."""
    for rec in records:
        if rec.get("task") != task:
            continue
        diff = [
            f"{k}: {rec[k]!r} there, {mine[k]!r} now"
            for k in mine
            if k in rec and rec[k] != mine[k]
        ]
        if diff:
            raise ThinkscaleError(
                f"{out} holds {task} records made with other settings ({'; '.join(diff)}); "
                "use another --out, or the same settings to resume"
            )
        return  # one record stands for the file: every write goes through this check


def to_record(fin, ex, budget, num_ignore, task: Task, fmt, tokenizer, cfg: GenerateConfig) -> dict:
    st = fin.state
    text = tokenizer.decode(st.generated, skip_special_tokens=False)
    thinking, answer = fmt.split(text)
    rec = {
        "task": task.name,
        "id": ex.id,
        "sample": fin.sample,
        "budget": budget,
        "num_ignore": num_ignore,
        "question": ex.question,
        "gold": ex.gold,
        "thinking": thinking,
        "answer": answer,
        "pred": task.extract(answer),
        "correct": None,
        "thinking_tokens": st.thinking_tokens,
        "answer_tokens": st.answer_tokens,
        "capped": st.capped,
        "waits": st.waits,
        "finish_reason": st.finish_reason,
        "grader": task.grader,
        "format": fmt.name,
        "model": cfg.model,
        "temperature": cfg.temperature,
        "seed": cfg.seed,
        "min_thinking": cfg.min_thinking,
        "forcing": cfg.forcing,
    }
    return rec
