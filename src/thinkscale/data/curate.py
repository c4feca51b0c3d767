"""The s1 curation pipeline: validate, then any of quality, decontaminate, dedup, difficulty,
domain, select in the order given, with a funnel of counts and a reason for every dropped sample.

Layout of `--out DIR`:
  stages/NN-<stage>/kept/*.jsonl, dropped/**/*.jsonl   what each stage passed on and dropped
  stages/NN-<stage>/done.json                            written last: the stage is finished
  data.jsonl       the kept traces (question/thinking/answer/id + what stages recorded)
  dropped.jsonl    every dropped sample: id, stage, reason (+ file:line for invalid rows)
  funnel.json, funnel.png

Resume: a stage whose done.json carries the same fingerprint (its settings and everything
before it) is not run again; an unfinished stage picks up where datatrove's completed tasks and
the difficulty stage's per-question records left off. Changed settings rerun from that stage."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least
from thinkscale.data.decontaminate import DecontaminateConfig
from thinkscale.data.dedup import DedupConfig
from thinkscale.data.difficulty import DifficultyConfig
from thinkscale.data.domain import DomainConfig
from thinkscale.data.executors import ExecutorConfig
from thinkscale.data.quality import QualityConfig
from thinkscale.data.select import SelectConfig
from thinkscale.data.traces import TraceFields
from thinkscale.models import DEFAULT_MODEL
from thinkscale.records import write_json_atomic

STAGES = ("quality", "decontaminate", "dedup", "difficulty", "domain", "select")
TRACE_KEYS = ("id", "question", "thinking", "answer", "source", "domain")


@dataclass
class CurateConfig:
    data: list[str] = field(default_factory=list)  # files, saved datasets or built-in corpora
    out: str = "runs/curate"
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    limit: int | None = None  # a seeded random subsample of the input, for a quick run
    seed: int = 0
    tokenizer: str = DEFAULT_MODEL  # counts trace_tokens (difficulty, select)
    question_field: str = "question"
    thinking_field: str = "thinking"
    answer_field: str = "answer"
    id_field: str = "id"
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    select: SelectConfig = field(default_factory=SelectConfig)

    def validate(self) -> None:
        if not self.data:
            raise ThinkscaleError("--data: give at least one traces file or built-in corpus")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ThinkscaleError(
                f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}"
            )
        if len(set(self.stages)) != len(self.stages):
            raise ThinkscaleError(f"--stages lists a stage twice: {','.join(self.stages)}")
        check_at_least(self, 1, "limit")
        self.executor.validate()
        for stage in self.stages:
            getattr(self, stage).validate()

    def fields(self) -> TraceFields:
        return TraceFields(
            self.question_field, self.thinking_field, self.answer_field, self.id_field
        )


def _fingerprint(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _source_identity(source: str) -> dict:
    """What a rerun compares: a file's size and mtime (edited input = rerun), or the corpus name."""
    path = Path(source)
    if path.is_file():
        st = path.stat()
        return {"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime}
    return {"name": source}


def curate(cfg: CurateConfig, progress: bool = True) -> dict:
    """Run the pipeline; returns the funnel (also written to `out/funnel.json`)."""
    cfg.validate()
    out = Path(cfg.out)
    created = [p for p in (out, out / "stages") if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _curate(cfg, out, progress)
    except ThinkscaleError:
        if created and not list(out.glob("stages/*/done.json")):
            shutil.rmtree(created[0], ignore_errors=True)  # bad input leaves no folder behind
        raise


def _curate(cfg: CurateConfig, out: Path, progress: bool) -> dict:
    say = print if progress else (lambda *a, **k: None)
    plan = ["validate", *cfg.stages]
    funnel: list[dict] = []
    fingerprint = _fingerprint([_source_identity(s) for s in cfg.data], asdict(cfg.fields()),
                               cfg.limit, cfg.seed, cfg.executor.tasks)  # fmt: skip
    previous: Path | None = None
    for i, name in enumerate(plan):
        stage_cfg = asdict(getattr(cfg, name)) if name in STAGES else {}
        extra = {"select": [cfg.seed, cfg.tokenizer], "difficulty": [cfg.tokenizer]}.get(name)
        fingerprint = _fingerprint(fingerprint, name, stage_cfg, extra)
        stage_dir = out / "stages" / f"{i:02d}-{name}"
        done = _read_done(stage_dir, fingerprint)
        if done is None:
            _prepare_stage_dir(out, i, stage_dir, fingerprint)
            t0 = time.time()
            say(f"[{i + 1}/{len(plan)}] {name} ...", flush=True)
            _run_stage(name, cfg, previous, stage_dir)
            n_in = funnel[-1]["out"] if funnel else None
            done = _summarize(name, n_in, stage_dir, time.time() - t0)
            write_json_atomic(stage_dir / "done.json", {"fingerprint": fingerprint, **done})
        else:
            say(f"[{i + 1}/{len(plan)}] {name}: finished earlier, reused")
        say(f"    {done['in']:>7,} -> {done['out']:>7,}  " + _reasons_text(done["dropped"]))
        funnel.append({k: done[k] for k in ("name", "in", "out", "dropped", "seconds")})
        previous = stage_dir
        if done["out"] == 0 and i + 1 < len(plan):
            _write_report(out, cfg, funnel, previous)
            raise ThinkscaleError(
                f"no traces left after stage '{name}' (see {out / 'funnel.json'})"
            )
    for stale in sorted((out / "stages").glob("*")):
        if int(stale.name.split("-")[0]) >= len(plan):
            shutil.rmtree(stale)  # stages a longer earlier plan left behind
    report = _write_report(out, cfg, funnel, previous)
    if progress:
        print(funnel_table(report))
        print(
            f"kept {report['kept']:,} traces -> {out / 'data.jsonl'}; funnel -> {out / 'funnel.png'}"
        )
    return report


def _read_done(stage_dir: Path, fingerprint: str) -> dict | None:
    try:
        done = json.loads((stage_dir / "done.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return done if done.get("fingerprint") == fingerprint else None


def _prepare_stage_dir(out: Path, index: int, stage_dir: Path, fingerprint: str) -> None:
    """Keep a crashed run of the same stage (its finished tasks are reused); clear anything else,
    including every later stage, whose input is about to change."""
    mark = stage_dir / "fingerprint"
    same = mark.exists() and mark.read_text() == fingerprint
    for other in sorted((out / "stages").glob("*")) if (out / "stages").exists() else []:
        position = int(other.name.split("-")[0])
        if position > index or (position == index and (other != stage_dir or not same)):
            shutil.rmtree(other)
    (stage_dir / "done.json").unlink(missing_ok=True)
    stage_dir.mkdir(parents=True, exist_ok=True)
    mark.write_text(fingerprint)


def _run_stage(name: str, cfg: CurateConfig, previous: Path | None, stage_dir: Path) -> None:
    from thinkscale.data.documents import reader, writer
    from thinkscale.data.executors import run_pipeline

    kept, dropped, logs = stage_dir / "kept", stage_dir / "dropped", stage_dir / "logs"
    source = previous / "kept" if previous else None
    ex = cfg.executor
    if name == "validate":
        _validate(cfg, stage_dir)
    elif name == "quality":
        from thinkscale.data.quality import QualityFilter

        run_pipeline([reader(source), QualityFilter(cfg.quality, writer(dropped)), writer(kept)],
                     logs, ex)  # fmt: skip
    elif name == "decontaminate":
        from thinkscale.data.decontaminate import DecontaminationFilter, EvalNgramIndexer

        index = stage_dir / "index"
        run_pipeline([EvalNgramIndexer(str(index), cfg.decontaminate)], logs / "index", ex, tasks=1)
        run_pipeline([reader(source),
                      DecontaminationFilter(str(index), cfg.decontaminate, writer(dropped)),
                      writer(kept)], logs / "filter", ex)  # fmt: skip
    elif name == "dedup":
        from thinkscale.data.dedup import run_dedup

        run_dedup(source, kept, dropped, stage_dir / "work", cfg.dedup, ex)
    elif name == "difficulty":
        from thinkscale.data.difficulty import DifficultyFilter

        step = DifficultyFilter(
            cfg.difficulty, cfg.tokenizer, str(stage_dir / "answers"), writer(dropped)
        )
        run_pipeline([reader(source), step, writer(kept)], logs, _one_at_a_time(ex))
    elif name == "domain":
        from thinkscale.data.domain import DomainStep

        run_pipeline(
            [reader(source), DomainStep(cfg.domain), writer(kept)], logs, _one_at_a_time(ex)
        )
    elif name == "select":
        _select(cfg, source, stage_dir)


def _one_at_a_time(ex: ExecutorConfig) -> ExecutorConfig:
    """Model stages run their local tasks one after another: each already uses every core."""
    if ex.executor != "local":
        return ex
    return ExecutorConfig(**{**asdict(ex), "workers": 1})


def _validate(cfg: CurateConfig, stage_dir: Path) -> None:
    from thinkscale.data.documents import write_jsonl_atomic, write_shards
    from thinkscale.data.validate import validate_traces

    rows, bad = validate_traces(cfg.data, cfg.fields())
    if cfg.limit is not None and cfg.limit < len(rows):
        sample = set(random.Random(cfg.seed).sample(range(len(rows)), cfg.limit))
        bad += [{"id": r["id"], "where": "", "reason": "not_in_limit_sample"}
                for i, r in enumerate(rows) if i not in sample]  # fmt: skip
        rows = [r for i, r in enumerate(rows) if i in sample]
    for d in bad:
        if d["reason"] == "not_in_limit_sample":
            continue
        print(f"warning: {d['where']}: {d['reason']} (row dropped)", file=sys.stderr)
    write_shards(rows, stage_dir / "kept", cfg.executor.tasks)
    (stage_dir / "dropped").mkdir(exist_ok=True)
    write_jsonl_atomic(
        stage_dir / "dropped" / "invalid.jsonl",
        ({"text": "", "id": d["id"], "metadata": {"filter_reason": d["reason"], "where": d["where"]}}
         for d in bad),
    )  # fmt: skip


def _select(cfg: CurateConfig, source: Path, stage_dir: Path) -> None:
    from thinkscale.data.difficulty import count_trace_tokens
    from thinkscale.data.documents import read_rows, write_jsonl_atomic, write_shards
    from thinkscale.data.select import s1_select

    rows = read_rows(source)
    missing = [r for r in rows if "trace_tokens" not in r]
    for r, n in zip(missing, count_trace_tokens(missing, cfg.tokenizer)):
        r["trace_tokens"] = n
    if not any(r.get("domain") for r in rows):
        print("warning: select: no domain labels (run the domain stage first); "
              "selecting by length in one domain", file=sys.stderr)  # fmt: skip
    chosen = s1_select(rows, cfg.select.select, cfg.seed)
    picked = {r["id"] for r in chosen}
    write_shards(chosen, stage_dir / "kept", 1)  # one shard keeps the order of the draw
    (stage_dir / "dropped").mkdir(exist_ok=True)
    write_jsonl_atomic(
        stage_dir / "dropped" / "00000.jsonl",
        ({"text": r["question"], "id": r["id"], "metadata": {**_meta(r), "filter_reason": "not_selected"}}
         for r in rows if r["id"] not in picked),
    )  # fmt: skip


def _meta(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("id", "question")}


def _count(folder: Path) -> int:
    return sum(
        sum(1 for line in open(p, encoding="utf-8") if line.strip())
        for p in sorted(folder.rglob("*.jsonl"))
    ) if folder.exists() else 0  # fmt: skip


def _summarize(name: str, n_in: int | None, stage_dir: Path, seconds: float) -> dict:
    """Counts of a finished stage; `n_in` is what the previous stage kept (None for validate)."""
    from thinkscale.data.documents import read_rows

    dropped = Counter(r.get("filter_reason", "dropped") for r in read_rows(stage_dir / "dropped"))
    out = _count(stage_dir / "kept")
    if n_in is None:
        n_in = out + sum(dropped.values())
    if n_in != out + sum(dropped.values()):
        raise ThinkscaleError(
            f"stage {name}: {n_in} in but {out} kept + {sum(dropped.values())} dropped "
            f"(a task's output is incomplete; delete {stage_dir} and rerun)"
        )
    return {"name": name, "in": n_in, "out": out, "dropped": dict(dropped.most_common()),
            "seconds": round(seconds, 2)}  # fmt: skip


def _reasons_text(dropped: dict) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in dropped.items())


def _write_report(out: Path, cfg: CurateConfig, funnel: list[dict], last: Path) -> dict:
    from thinkscale.data.documents import read_rows, write_jsonl_atomic

    kept = read_rows(last / "kept")
    write_jsonl_atomic(out / "data.jsonl", ({**{k: r[k] for k in TRACE_KEYS if k in r},
                                             **{k: v for k, v in r.items() if k not in TRACE_KEYS}}
                                            for r in kept))  # fmt: skip
    dropped_rows = []
    for stage_dir in sorted((out / "stages").glob("*")):
        stage = stage_dir.name.split("-", 1)[1]
        for r in read_rows(stage_dir / "dropped"):
            entry = {"id": r["id"], "stage": stage, "reason": r.get("filter_reason", "dropped")}
            if "where" in r:
                entry["where"] = r["where"]
            if "contaminated_ngram" in r:
                entry["ngram"] = r["contaminated_ngram"]
            dropped_rows.append(entry)
    write_jsonl_atomic(out / "dropped.jsonl", dropped_rows)
    report = {"data": cfg.data, "stages": funnel, "kept": len(kept), "config": asdict(cfg)}
    write_json_atomic(out / "funnel.json", report)
    plot_funnel(report, out / "funnel.png")
    return report


def funnel_table(report: dict) -> str:
    lines = [f"{'stage':<14}{'in':>9}{'out':>9}  dropped (reason: count)"]
    for s in report["stages"]:
        lines.append(
            f"{s['name']:<14}{s['in']:>9,}{s['out']:>9,}  {_reasons_text(s['dropped']) or '-'}"
        )
    return "\n".join(lines)


def plot_funnel(report: dict, path: Path) -> None:
    """Kept count after each stage, with the stage's drop reasons stacked on top of it."""
    import matplotlib.pyplot as plt

    from thinkscale.plots import figure

    stages = report["stages"]
    names = [s["name"] for s in stages]
    with figure(path, figsize=(max(6, 1.3 * len(stages) + 2), 4.5)) as (fig, ax):
        ax.bar(names, [s["out"] for s in stages], color="#4c72b0", label="kept")
        palette = plt.get_cmap("tab20").colors
        colors: dict[str, tuple] = {}
        for x, s in enumerate(stages):
            bottom = s["out"]
            for reason, n in s["dropped"].items():
                if reason == "not_in_limit_sample":
                    continue  # --limit: the funnel starts at the sample
                new = reason not in colors
                color = colors.setdefault(reason, palette[(len(colors) * 2 + 1) % len(palette)])
                ax.bar(x, n, bottom=bottom, color=color, label=reason if new else None)
                bottom += n
            ax.text(x, bottom, f"{s['out']:,}", ha="center", va="bottom", fontsize=9)
        ax.set_yscale("log")
        ax.set_ylabel("samples: kept (blue) + dropped by reason")
        first = stages[0]["out"] + sum(
            n for r, n in stages[0]["dropped"].items() if r != "not_in_limit_sample"
        )
        ax.set_title(f"curation funnel: {first:,} -> {report['kept']:,}")
        ax.legend(fontsize=7, loc="upper right", ncol=2)
        fig.tight_layout()
