"""generate / sweep: questions x budgets x num_ignore -> graded records.

`generate_records` plans, builds the requests, runs an engine and grades: it yields records and
touches no file (refine's filter, GRPO rewards, difficulty and the Python API use it in memory).
`generate` is the file-writing wrapper: append-only JSONL, resumed exactly once.

Every (question, budget, num_ignore) of a sweep goes into ONE engine run, so short and long
requests share the batch and finished rows are replaced at once (continuous batching).
"""

from __future__ import annotations

import argparse
import dataclasses
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, option
from thinkscale.formats import FormatConfig
from thinkscale.infer.adaptive import ADAPTIVE_KINDS, AdaptiveRule, probe_reader
from thinkscale.infer.engines import ENGINES, FORCINGS, Finished, OnToken, Request, SamplingConfig
from thinkscale.infer.forcing import Budget
from thinkscale.models import DEFAULT_MODEL, DTYPES
from thinkscale.records import (
    SETTINGS,
    Record,
    RecordWriter,
    check_settings,
    make_record,
    record_name,
    sample_key,
)
from thinkscale.tasks import TASK_SIZES, TASKS, Example, FileTask, Task, get_task
from thinkscale.tasks.grading import GRADERS, GradingPool


def parse_budget(text: str) -> int | None:
    """A thinking cap: a number of tokens, or `none` (no cap)."""
    if text.lower() in ("none", "inf", "unlimited"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"budget must be an integer or 'none', got '{text}'"
        ) from None


@dataclass
class TaskSource:
    """Which questions: a built-in task, or a user file with its field names."""

    task: str | None = option(None, choices=lambda: TASKS, help="built-in benchmark (offline; questions): "
                              + ", ".join(f"{n} ({k:,})" for n, k in TASK_SIZES.items()))  # fmt: skip
    data: str | None = option(None, help="a JSONL or parquet file of questions and gold answers "
                              "(or a dataset directory, with --split)")  # fmt: skip
    question_field: str = option("question")
    answer_field: str = option("answer", help="the gold: a string, a number or a list of accepted "
                               "answers; for choice a letter, a 0-based index or the option's text")  # fmt: skip
    id_field: str | None = option(None, help="default: the line number")
    grader: str = option("math", help="for --data: math (math-verify), numeric, qa (short answers: "
                         "normalised exact match + token F1, fs1) or choice (multiple choice)",
                         choices=lambda: GRADERS)  # fmt: skip
    choices_field: str | None = option(None, help="for --grader choice: the options (a list, a dict "
                                       "A-D, or 'A) .. B) ..'); default: parsed from the question")  # fmt: skip
    shuffle_choices: bool = option(False, help="permute each question's options with --seed (recorded as choice_order)")
    source_field: str | None = option(None, help="the field naming each row's source (kept in records); "
                                      "default 'source' with --source-filter")  # fmt: skip
    source_filter: list[str] | None = option(None, help="keep only rows whose source is one of these (fs1)")
    split: str | None = option(None, help="for a dataset directory: the split to read")
    limit: int | None = option(None, help="first N questions only", aliases=("--max-examples",))

    def check_source(self) -> None:
        if (self.task is None) == (self.data is None):
            raise ThinkscaleError("give exactly one of --task or --data")
        check_at_least(self, 1, "limit")
        if self.data is not None and Path(self.data).is_dir() and self.split is None:
            raise ThinkscaleError(f"{self.data}: is a directory; --data takes a JSONL or parquet file "
                                  "(or a dataset directory with --split)")  # fmt: skip
        if self.task is not None and (self.choices_field or self.split):
            raise ThinkscaleError("--choices-field and --split apply to --data files")
        if self.choices_field and self.grader != "choice":
            raise ThinkscaleError("--choices-field needs --grader choice")

    def build_task(self) -> Task:
        if self.data:
            return FileTask(
                self.data, self.question_field, self.answer_field, self.id_field, grader=self.grader,
                choices_field=self.choices_field, shuffle_choices=self.shuffle_choices,
                seed=getattr(self, "seed", 0), source_field=self.source_field,
                source_filter=self.source_filter, split=self.split,
            )  # fmt: skip
        task = get_task(self.task)
        if self.source_filter:
            if not getattr(task, "source_field", None):
                raise ThinkscaleError(f"--source-filter: task '{self.task}' has no sources")
            task.source_filter = self.source_filter
        if self.shuffle_choices:
            if task.grader != "choice":
                raise ThinkscaleError(f"--shuffle-choices: task '{self.task}' is not multiple choice")
            task.shuffle_choices, task.seed = True, getattr(self, "seed", 0)
        return task


@dataclass
class GenerateConfig(TaskSource, FormatConfig):
    """What to generate. CLI flags mirror these fields."""

    n: int = option(1, help="samples per question")
    budgets: list[int | None] = option(help="thinking caps in tokens ('none' = no cap)",
                                       type=parse_budget, factory=lambda: [None])  # fmt: skip
    num_ignores: list[int] = option(help="Waits forced per sample (ignored ends of thinking)",
                                    factory=lambda: [0])  # fmt: skip
    runs: list[tuple[int | None, int]] | None = option(None, cli=False)  # explicit (budget, num_ignore) pairs
    modes: list[str] | None = option(None, help="--format hybrid: auto (the model emits <think> or <short>), "
                                     "think or short (forced); default auto", metavar="MODE")  # fmt: skip
    min_thinking: int = option(0, help="end of thinking is suppressed until M tokens")
    max_answer_tokens: int = option(256)
    max_total_tokens: int = option(4096, help="safety net when there is no cap")
    wait: str = option("Wait", help="text forced when an end of thinking is ignored")
    adaptive: str | None = option(None, choices=ADAPTIVE_KINDS, help="end thinking once the answer "
                                  "settles, judged by probes branched off the row (HF engine): consistency "
                                  "(Dynasor-CoT: --agree equal probe answers in a row) or confidence (DEER: "
                                  "the probe's answer tokens' mean probability >= --confidence; also probes "
                                  "where the model starts a Wait). The cap still wins; Waits come first")  # fmt: skip
    probe_every: int = option(64, help="--adaptive: a probe every this many thinking tokens")
    probe_tokens: int = option(20, help="--adaptive: answer tokens a probe decodes (greedy) after the "
                               "format's forced answer text")  # fmt: skip
    agree: int = option(3, help="--adaptive consistency: equal, non-empty probe answers in a row that end thinking")
    confidence: float = option(0.95, help="--adaptive confidence: the mean probability that ends thinking")
    forcing: str = option("single-pass", choices=FORCINGS,
                          help="single-pass: forcing inside one decode loop; multi-round: s1's repeated generate calls")  # fmt: skip
    model: str = option(DEFAULT_MODEL, help="embedded model name or a local HF checkpoint dir")
    engine: str = option("hf", choices=ENGINES,
                         help="hf: transformers; vllm: vLLM (make install ENGINE=vllm); auto: vLLM if installed")  # fmt: skip
    temperature: float = option(0.0, help="0 = greedy")
    top_p: float = option(1.0)
    top_k: int = option(0)
    seed: int = option(0)
    batch_size: int = option(16, help="rows decoded together")
    compile: bool = option(False, help="--engine hf: torch.compile the decode step (embedded model, 2 CPU cores: "
                           "batch-1 decoding 2.4-3.3x faster after ~1 min of compiling, batch 16 1.06-1.28x "
                           "after 2-6 min; see the README's Benchmark section)")
    tensor_parallel_size: int = option(1, help="--engine vllm: GPUs per model replica (tensor parallel)")
    pipeline_parallel_size: int = option(1, help="--engine vllm: pipeline stages")
    data_parallel_size: int = option(1, help="--engine vllm: model replicas")
    max_num_seqs: int | None = option(None, help="--engine vllm: sequences per step (default: --batch-size)")
    gpu_memory_utilization: float | None = option(None, help="--engine vllm: share of GPU memory vLLM may use "
                                                  "(default: vLLM's)")  # fmt: skip
    max_model_len: int | None = option(None, help="--engine vllm: context length (default: the longest cap + "
                                       "answer + 1024)")  # fmt: skip
    dtype: str = option("auto", choices=DTYPES, help="auto: bfloat16 on a GPU or a CPU with bf16 units "
                        "(AMX, AVX512-BF16), else float32 (bf16 is emulated there: ~3x slower)")  # fmt: skip

    def grid(self) -> list[tuple[int | None, int]]:
        if self.runs is not None:
            return [(b, k) for b, k in self.runs]
        return [(b, k) for b in self.budgets for k in self.num_ignores]

    def mode_list(self) -> list[str | None]:
        """The hybrid modes to run, each once ([None]: the format has no modes)."""
        modes = self.checked_modes(self.modes)[1]
        return list(dict.fromkeys(modes)) if modes else [None]

    def budget(self, cap: int | None, num_ignore: int, mode: str | None = None) -> Budget:
        return Budget(cap, num_ignore, self.min_thinking, self.max_answer_tokens, self.max_total_tokens, mode,
                      self.adaptive_rule())  # fmt: skip

    def adaptive_rule(self) -> AdaptiveRule | None:
        """The early-exit rule (without a reader: each request gets its own question's)."""
        if self.adaptive is None:
            return None
        return AdaptiveRule(self.adaptive, self.probe_every, self.probe_tokens, self.agree, self.confidence)

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(self.temperature, self.top_p, self.top_k, self.seed)

    def validate(self, source: bool = True) -> None:
        """Every setting, before any model loads or any file is created."""
        if source:
            self.check_source()
        if not self.grid():
            raise ThinkscaleError("give at least one budget and one num_ignore")
        for b, _ in self.grid():
            if b is not None and b <= 0:
                raise ThinkscaleError(
                    f"--budget must be a positive number of thinking tokens, got {b}"
                )
        for _, k in self.grid():
            if k < 0:
                raise ThinkscaleError(f"--num-ignore must be >= 0, got {k}")
        check_at_least(self, 1, "n", "batch_size", "max_answer_tokens", "max_total_tokens")
        check_at_least(self, 0, "min_thinking", "temperature")
        if not 0 < self.top_p <= 1:
            raise ThinkscaleError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ThinkscaleError(f"--top-k must be >= 0 (0 = off), got {self.top_k}")
        if self.n > 1 and self.temperature <= 0:
            raise ThinkscaleError("--n > 1 needs --temperature > 0 (greedy samples are identical)")
        if self.forcing == "multi-round" and self.temperature > 0:
            raise ThinkscaleError("--forcing multi-round is greedy only (--temperature 0), as in s1")
        from thinkscale.infer.engines import resolve_engine

        if resolve_engine(self.engine) == "vllm":
            from thinkscale.infer.vllm_engine import vllm_available

            if not vllm_available():
                raise ThinkscaleError("--engine vllm needs vLLM: make install ENGINE=vllm")
        if self.forcing not in FORCINGS:
            raise ThinkscaleError(f"--forcing must be one of {', '.join(FORCINGS)}, got {self.forcing}")
        if not self.wait.strip():
            raise ThinkscaleError("--wait must be a non-empty text")
        if self.dtype not in DTYPES:
            raise ThinkscaleError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype}")
        self.check_modes()
        self.check_adaptive()
        self.check_vllm_args()
        if self.compile and (resolve_engine(self.engine) != "hf" or self.forcing != "single-pass"):
            raise ThinkscaleError("--compile applies to --engine hf --forcing single-pass (the engine whose decode "
                                  "step it compiles)")  # fmt: skip

    @property
    def vllm_processes(self) -> int:
        """How many vLLM worker processes the parallelism flags ask for."""
        return self.tensor_parallel_size * self.pipeline_parallel_size * self.data_parallel_size

    def vllm_args(self) -> dict:
        """vLLM engine arguments beyond thinkscale's defaults (what `--engine vllm` passes on)."""
        args = {k: getattr(self, k) for k in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
                if getattr(self, k) != 1}  # fmt: skip
        if self.gpu_memory_utilization is not None:
            args["gpu_memory_utilization"] = self.gpu_memory_utilization
        return args

    def check_vllm_args(self) -> None:
        check_at_least(self, 1, "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size",
                       "max_num_seqs", "max_model_len")  # fmt: skip
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ThinkscaleError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        from thinkscale.infer.engines import resolve_engine

        given = [k for k in ("max_num_seqs", "max_model_len", "gpu_memory_utilization") if getattr(self, k) is not None]
        if (self.vllm_args() or given) and resolve_engine(self.engine) != "vllm":
            name = (list(self.vllm_args()) or given)[0]
            raise ThinkscaleError(f"--{name.replace('_', '-')} applies to --engine vllm")

    def check_adaptive(self) -> None:
        if self.adaptive is None:
            return
        if self.adaptive not in ADAPTIVE_KINDS:
            raise ThinkscaleError(f"--adaptive must be one of {', '.join(ADAPTIVE_KINDS)}, got {self.adaptive!r}")
        check_at_least(self, 1, "probe_every", "probe_tokens", "agree")
        if not 0 < self.confidence <= 1:
            raise ThinkscaleError(f"--confidence must be in (0, 1], got {self.confidence}")
        if not self.think_format().thinks:
            raise ThinkscaleError(f"--adaptive ends thinking early; --format {self.format} does not think")
        from thinkscale.infer.engines import resolve_engine

        if resolve_engine(self.engine) != "hf" or self.forcing != "single-pass":
            raise ThinkscaleError("--adaptive needs --engine hf --forcing single-pass: a probe is decoded on "
                                  "top of the row's KV cache and then taken back out of it, which a vLLM "
                                  "logits processor or s1's repeated generate calls cannot do")  # fmt: skip

    def check_modes(self) -> None:
        if self.checked_modes(self.modes)[1] and self.forcing == "multi-round":
            raise ThinkscaleError("--forcing multi-round does not run --format hybrid; use single-pass")

    def settings(self) -> dict:
        """SETTINGS' values; `format` as records store it (a custom one with its delimiters),
        `adaptive` as its rule's label (None: fixed budgets)."""
        rule = self.adaptive_rule()
        special = {"format": self.think_format().label, "adaptive": rule.label() if rule else None}
        return {k: special[k] if k in special else getattr(self, k) for k in SETTINGS}


def load_examples(task: Task, limit: int | None) -> list[Example]:
    examples = task.load(limit)
    if not examples:
        raise ThinkscaleError(f"task '{task.name}' has no examples")
    return examples


def sample_seed(seed: int, example_id: str, sample: int) -> int:
    """A sample's seed depends on (seed, id, sample) only: the same across budgets and batches."""
    return zlib.crc32(f"{seed}/{example_id}/{sample}".encode())


# (example, budget, num_ignore, hybrid mode or None, samples)
Plan = list[tuple[Example, int | None, int, str | None, list[int]]]


def plan(cfg: GenerateConfig, task: Task, examples: list[Example], done: set = frozenset()) -> Plan:
    """Every (example, budget, num_ignore, mode) with the samples whose keys are not in `done`."""
    todo = []
    for mode in cfg.mode_list():
        for budget, ni in cfg.grid():
            for ex in examples:
                samples = [s for s in range(cfg.n)
                           if sample_key(task.name, ex.id, s, budget, ni, mode) not in done]  # fmt: skip
                if samples:
                    todo.append((ex, budget, ni, mode, samples))
    return todo


def check_resumed_examples(records: list[Record], out: Path, task: Task, examples: list[Example]) -> None:
    """A record resumed for an example must be about that example: same question, same gold
    (a file of another data set under the same task name would otherwise pass as done)."""
    by_id = {ex.id: ex for ex in examples}
    for rec in records:
        ex = by_id.get(str(rec.get("id"))) if rec.get("task") == task.name else None
        if ex is None:
            continue
        for name, mine in (("question", ex.question), ("gold", ex.gold)):
            if name in rec and rec[name] != mine:
                raise ThinkscaleError(
                    f"{out} holds a {task.name} record for id '{ex.id}' with another {name} "
                    f"({str(rec[name])[:60]!r} there, {str(mine)[:60]!r} now): a different data "
                    "set under the same task name; use another --out"
                )


def generate_records(
    cfg: GenerateConfig,
    task: Task | None = None,
    examples: list[Example] | None = None,
    model=None,
    tokenizer=None,
    skip: set = frozenset(),
    on_token: OnToken | None = None,
    progress: bool = True,
) -> Iterator[Record]:
    """Graded records of every sample `cfg` asks for whose key is not in `skip`, yielded as
    they finish (graded a batch at a time). `task` overrides cfg's task/data."""
    cfg.validate(source=task is None)
    task = task or cfg.build_task()
    examples = examples if examples is not None else load_examples(task, cfg.limit)
    todo = plan(cfg, task, examples, skip)
    if not todo:
        return
    from thinkscale.infer.engines import make_engine

    engine, tokenizer = make_engine(cfg, model, tokenizer)
    fmt = cfg.think_format()
    requests = []
    for ex, budget, ni, mode, samples in todo:
        prompt = fmt.render_prompt(tokenizer, task.prompt(ex), mode=mode)
        rules = cfg.budget(budget, ni, mode)
        if rules.adaptive is not None:  # probes read answers as this question's task does
            read = probe_reader(tokenizer, lambda text, ex=ex: task.extract(text, ex))
            rules.adaptive = dataclasses.replace(rules.adaptive, read=read)
        requests.append(
            Request(
                key=(ex, budget, ni, mode),
                prompt_ids=tokenizer.encode(prompt, add_special_tokens=False),
                budget=rules,
                samples=samples,
                seeds=[sample_seed(cfg.seed, ex.id, s) for s in samples],
            )
        )
    check_context(requests, getattr(engine, "max_positions", None), engine.tokens)
    total = sum(len(t[-1]) for t in todo)
    bar = tqdm(total=total, desc=f"{task.name} generate", unit="sample", disable=not progress)
    pending: list[Record] = []
    with GradingPool(workers=1) as grader:

        def graded() -> list[Record]:
            gradable = [r for r in pending if r["gold"] is not None]
            verdicts = grader.grade([(task.grader, r["pred"], r["gold"]) for r in gradable],
                                    [record_name(r) for r in gradable])
            for rec, ok in zip(gradable, verdicts):
                rec["correct"] = ok
            out = list(pending)
            pending.clear()
            return out

        try:
            for fin in engine.run(requests, cfg.sampling(), on_token=on_token):
                pending.append(to_record(fin, task, fmt, tokenizer, cfg))
                bar.update(1)
                if len(pending) >= cfg.batch_size:
                    yield from graded()
            yield from graded()
        finally:
            bar.close()


def check_context(requests: list[Request], context: int | None, tokens) -> None:
    """Fail before generating when a request cannot fit the model's context: its prompt, its
    thinking cap (when one is given) and the room the answer needs. Without a cap, thinking
    stops where the context ends (finish_reason `context`)."""
    if not context or tokens is None:
        return
    for r in requests:
        b = r.budget
        room = b.max_new_tokens(tokens, thinking=None if b.max_thinking_tokens is not None else 1)
        if len(r.prompt_ids) + room > context:
            ex = r.key[0]
            raise ThinkscaleError(
                f"example '{getattr(ex, 'id', ex)}': a prompt of {len(r.prompt_ids)} tokens plus "
                f"{room} to generate (thinking cap {b.max_thinking_tokens}, answer "
                f"{b.max_answer_tokens}) exceeds the model's context of {context} tokens; lower "
                "--budget or --max-answer-tokens"
            )


def generate(
    cfg: GenerateConfig, out: str | Path, model=None, tokenizer=None, progress: bool = True,
    task: Task | None = None,
) -> Path:  # fmt: skip
    """Generate, grade and append records to `out`; keys already there are skipped."""
    from thinkscale.infer.engines import preflight

    cfg.validate(source=task is None)
    out = Path(out)
    check_out_file(out)
    task = task or cfg.build_task()
    examples = load_examples(task, cfg.limit)
    if model is None:
        preflight(cfg)  # a bad model path, before any output exists
    writer = RecordWriter(out)
    check_settings(writer.records, out, task.name, cfg.settings())
    check_resumed_examples(writer.records, out, task, examples)
    if not plan(cfg, task, examples, writer.done):
        print(f"{out}: all {len(writer.done)} records already present; nothing to do")
        return out
    with writer:
        for rec in generate_records(cfg, task, examples, model, tokenizer, writer.done, progress=progress):
            writer.write(rec)
    return out


def check_out_file(out: Path) -> None:
    """An output file path that can be written: not a directory, no file where a folder is."""
    if out.is_dir():
        raise ThinkscaleError(f"{out}: is a directory; --out takes a results file here")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ThinkscaleError(f"{out}: cannot be created ({parent} is a file, not a directory)")


def to_record(fin: Finished, task: Task, fmt, tokenizer, cfg: GenerateConfig) -> Record:
    ex, budget, num_ignore, mode = fin.request.key
    st = fin.state
    text = tokenizer.decode(st.generated, skip_special_tokens=False)
    thinking, answer = fmt.split(text, st.mode)
    pred = task.extract(answer, ex)
    hybrid = {"mode": st.mode, "requested_mode": mode} if mode is not None else {}
    if cfg.adaptive is not None:  # probe compute, reported apart from thinking tokens
        hybrid.update(probes=len(st.probes), probe_tokens=st.probe_tokens,
                      probe_answers=[p.answer for p in st.probes])  # fmt: skip
    return make_record(
        task=task.name, id=ex.id, sample=fin.sample, budget=budget, num_ignore=num_ignore,
        question=ex.question, gold=ex.gold, thinking=thinking, answer=answer,
        pred=pred, correct=None, thinking_tokens=st.thinking_tokens,
        answer_tokens=st.answer_tokens, capped=st.capped, waits=st.waits,
        finish_reason=st.finish_reason, stopped_by=st.stopped_by, grader=task.grader, format=fmt.label,
        **hybrid, **task.extras(ex, pred),
        **{k: v for k, v in cfg.settings().items() if k != "format"},
    )  # fmt: skip
