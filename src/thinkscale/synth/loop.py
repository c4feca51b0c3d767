"""`thinkscale synth`: the system-1 loop DoT-sync describes, done as its README says and its code
does not (its generator rates samples by asking the model for a 1-10 score, checks no answer, has
no self-correction, runs one round and saves the unfiltered list).

Layout of OUT:
  synth_run.json                      the settings (a rerun with other settings is refused)
  round-0/data.jsonl                  the seed traces, curated
  round-0/model/, round-0/metrics.json
  round-r/samples.jsonl               K samples per open question (records; resumed exactly once)
  round-r/checks.jsonl                vote+check: the model's yes/no on each majority solution
  round-r/corrections.jsonl           self-correction samples (retry / hint)
  round-r/candidates.jsonl            verified traces, on the original questions
  round-r/curate/                     quality, decontamination, exact dedup (the curation stages)
  round-r/data.jsonl                  what round r trains on: round r-1's data + the new traces
  round-r/funnel.json                 sampled, verified, corrected, kept, dropped by reason
  round-r/model/, round-r/metrics.json (written last: the round is finished)
  synth.json, synth.png               per round: kept, held-out accuracy, pass@k

A question that has a trace in the data is not sampled again (one trace per question, as the
dedup stage keeps). Every step resumes: records are appended exactly once, curation and training
resume, and a round whose metrics.json exists is never redone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least, option
from thinkscale.models import DEFAULT_MODEL
from thinkscale.records import load_records, read_jsonl, write_json_atomic, write_jsonl_atomic
from thinkscale.run_dirs import check_run_dir
from thinkscale.synth.verify import (
    CORRECTIONS,
    VERIFIERS,
    by_question,
    check_prompt,
    hint_prompt,
    retry_prompt,
    to_trace,
    verify_gold,
    verify_vote,
)

RUN_FILE = "synth_run.json"
RETRAIN = ("from-base", "continue")


@dataclass
class SynthConfig:
    """Defaults fit the embedded model on a CPU. CLI flags mirror these fields."""

    seed_data: str = option("arith-mul", help="seed traces: a JSONL/parquet file or a built-in corpus")
    questions: str | None = option(None, help="a JSONL/parquet file of questions to solve (an answer "
                                   "field is needed by --verify gold and --self-correct hint)")  # fmt: skip
    question_field: str = option("question")
    answer_field: str = option("answer")
    id_field: str | None = option("id", help="the questions' id field (missing: the line number)")
    rounds: int = option(3, help="rounds after round 0 (the seed model)")
    samples: int = option(8, help="samples per question per round (K)")
    verify: str = option("vote", choices=VERIFIERS, help="gold: grade against the gold answer; vote: keep "
                         "the majority answer's samples when >= --min-agreement of the K agree; vote+check: "
                         "vote, then the model checks each kept solution (yes/no)")  # fmt: skip
    min_agreement: float = option(0.8, help="--verify vote: the share of the K samples that must agree")
    self_correct: str = option("off", choices=CORRECTIONS, help="a question with nothing verified: retry "
                               "(shown its failed attempt, K new samples verified again) or hint (STaR: the "
                               "gold answer as a hint; kept only if the trace reaches it, marked rationalized)")  # fmt: skip
    retrain: str = option("from-base", choices=RETRAIN, help="from-base: each round fine-tunes the base model "
                          "(ReST-EM); continue: fine-tunes the last round's model")  # fmt: skip
    model: str = option(DEFAULT_MODEL, help="the base model (embedded name or checkpoint dir)")
    grader: str = option("numeric", help="how answers are compared: numeric, math, qa, choice")
    # generation (generate's flags)
    format: str = option("s1")
    temperature: float = option(0.8)
    top_p: float = option(1.0)
    budget: int = option(128, help="thinking cap of each sample")
    max_answer_tokens: int = option(16)
    gen_batch_size: int = option(32, help="rows decoded together")
    dtype: str = option("auto")
    # training (train sft's flags)
    max_steps: int = option(60)
    epochs: float = option(1.0)
    learning_rate: float = option(3e-4)
    batch_size: int = option(8)
    micro_batch_size: int = option(8)
    warmup: float = option(0.1)
    max_length: int = option(256)
    save_steps: int = option(20)
    seed: int = option(0)
    # held-out evaluation of each round's model
    eval_task: str | None = option("arith-mul", help="a built-in task or a questions file with answers "
                                   "(held out: also decontaminated against); none to skip")  # fmt: skip
    eval_limit: int = option(50)
    eval_samples: int = option(0, help="also n samples per held-out question at --temperature: pass@k")
    dot: bool = option(False, help="also train a DoT reasoner on each round's data (--dot-train-seconds, equal "
                       "for every round) and report its held-out accuracy (--eval-task)")  # fmt: skip
    dot_train_seconds: float = option(300.0, help="--dot: training time of each round's DoT model")
    dot_steps: int = option(16, help="--dot: denoising steps when it is evaluated")
    decontaminate_against: list[str] = option(help="eval tasks no kept trace may overlap (n-grams)",
                                              factory=lambda: ["gsm8k", "math500", "math"])  # fmt: skip
    ngram: int = option(8, help="decontamination n-gram length (words)")

    def validate(self) -> None:
        from thinkscale.formats import get_format
        from thinkscale.tasks.grading import GRADERS

        if self.eval_task in ("", "none"):
            self.eval_task = None
        if self.questions is None:
            raise ThinkscaleError("--questions: give a JSONL/parquet file of questions")
        check_at_least(self, 1, "rounds", "samples", "budget", "max_answer_tokens", "gen_batch_size",
                       "batch_size", "micro_batch_size", "max_length", "save_steps", "eval_limit", "ngram")  # fmt: skip
        check_at_least(self, 0, "eval_samples")
        if self.verify.startswith("vote") and self.samples < 2:
            raise ThinkscaleError(f"--verify {self.verify} needs --samples >= 2 to vote, got {self.samples}")
        if not 0 < self.min_agreement <= 1:
            raise ThinkscaleError(f"--min-agreement must be in (0, 1], got {self.min_agreement}")
        if self.temperature <= 0:
            raise ThinkscaleError("--temperature must be > 0: K samples of a greedy model are one sample")
        if self.grader not in GRADERS:
            raise ThinkscaleError(f"--grader must be one of {', '.join(GRADERS)}, got '{self.grader}'")
        get_format(self.format)
        if self.dot and not self.eval_task:
            raise ThinkscaleError("--dot reports held-out accuracy: give --eval-task")
        if self.dot_train_seconds <= 0:
            raise ThinkscaleError(f"--dot-train-seconds must be positive, got {self.dot_train_seconds}")
        check_at_least(self, 1, "dot_steps")

    def needs_gold(self) -> bool:
        return self.verify == "gold" or self.self_correct == "hint"


@dataclass
class Question:
    id: str
    question: str
    gold: str | None


def load_questions(cfg: SynthConfig) -> list[Question]:
    """The questions file's rows; a missing question, or a missing answer where gold is needed,
    is an error naming file:line."""
    from thinkscale.tasks.base import read_table

    path = Path(cfg.questions)
    if not path.exists():
        raise ThinkscaleError(f"{path}: no such questions file")
    out, seen = [], set()
    for lineno, row in read_table(path):
        q = row.get(cfg.question_field)
        if not isinstance(q, str) or not q.strip():
            raise ThinkscaleError(f"{path}:{lineno}: missing field '{cfg.question_field}'")
        gold = row.get(cfg.answer_field)
        gold = None if gold is None or str(gold).strip() == "" else str(gold)
        if gold is None and cfg.needs_gold():
            why = "--verify gold" if cfg.verify == "gold" else "--self-correct hint"
            raise ThinkscaleError(f"{path}:{lineno}: missing field '{cfg.answer_field}' ({why} needs a gold answer)")
        qid = str(row[cfg.id_field]) if cfg.id_field and row.get(cfg.id_field) is not None else f"q{lineno}"
        if qid in seen:
            raise ThinkscaleError(f"{path}:{lineno}: duplicate id '{qid}'")
        seen.add(qid)
        out.append(Question(qid, q, gold))
    if not out:
        raise ThinkscaleError(f"{path}: no questions")
    return out


def _check_run(out: Path, cfg: SynthConfig) -> None:
    """A rerun with the same flags resumes (no --resume needed: the marker says it is this run)."""
    check_run_dir(out, RUN_FILE, asdict(cfg), resume=(out / RUN_FILE).exists(), kind="synth")


class Loop:
    """One synth run: the rounds, each resumable step by step."""

    def __init__(self, cfg: SynthConfig, out: Path, progress: bool = True):
        self.cfg, self.out, self.progress = cfg, out, progress
        self.questions = load_questions(cfg)
        self.by_id = {q.id: q for q in self.questions}

    # -- generation, through thinkscale's engine -------------------------------------------------
    def _generate(self, model: str, prompts: list[tuple[str, str, str | None]], path: Path, n: int,
                  greedy: bool = False, fmt: str | None = None, max_answer_tokens: int | None = None) -> list[dict]:  # fmt: skip
        """Records of `n` samples of each (id, prompt, gold) with `model`, appended to `path`."""
        from thinkscale.infer.generate import GenerateConfig, generate
        from thinkscale.tasks import QuestionsTask

        if not prompts:
            return []
        c = self.cfg
        golds = [g for _, _, g in prompts]
        task = QuestionsTask([p for _, p, _ in prompts], golds if all(g is not None for g in golds) else None,
                             [i for i, _, _ in prompts], name=path.stem, grader=c.grader)  # fmt: skip
        gen = GenerateConfig(model=model, format=fmt or c.format, n=n, temperature=0.0 if greedy else c.temperature,
                             top_p=c.top_p, budgets=[c.budget], max_answer_tokens=max_answer_tokens or c.max_answer_tokens,
                             batch_size=c.gen_batch_size, seed=c.seed, dtype=c.dtype, grader=c.grader)  # fmt: skip
        generate(gen, path, task=task, progress=self.progress)
        return load_records(path)

    def _train(self, data: Path, out: Path, init: str) -> str:
        from thinkscale.train.sft import SFTRunConfig, train_sft

        if (out / "config.json").exists():
            return str(out)
        c = self.cfg
        cfg = SFTRunConfig(data=str(data), out=str(out), model=init, format=c.format, max_steps=c.max_steps,
                           epochs=c.epochs, learning_rate=c.learning_rate, batch_size=c.batch_size,
                           micro_batch_size=c.micro_batch_size, warmup=c.warmup, max_length=c.max_length,
                           save_steps=c.save_steps, logging_steps=max(1, c.save_steps // 2), seed=c.seed,
                           save_total_limit=1, allow_truncation=True,
                           resume=(out / "thinkscale_sft.json").exists())  # fmt: skip
        model = train_sft(cfg)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # only a resume needs them (~1.6 GB each)
        return str(model)

    def _curate(self, inputs: list[Path], out: Path) -> tuple[list[dict], list[dict]]:
        """(kept rows, dropped entries) after validation, quality, decontamination and exact dedup.
        Kept rows are the input rows themselves (the stages keep only the trace fields), and each
        dropped entry names the input row's id (validation names a file:line)."""
        from thinkscale.data.curate import CurateConfig, curate
        from thinkscale.data.decontaminate import DecontaminateConfig
        from thinkscale.data.dedup import DedupConfig

        c = self.cfg
        against = list(dict.fromkeys(c.decontaminate_against + ([c.eval_task] if c.eval_task else [])))
        curate(CurateConfig(data=[str(p) for p in inputs], out=str(out), stages=["quality", "decontaminate", "dedup"],
                            decontaminate=DecontaminateConfig(eval_tasks=against, ngram=c.ngram),
                            dedup=DedupConfig(near=False)), progress=self.progress)  # fmt: skip
        rows, where = {}, {}
        for path in inputs:
            for lineno, row in read_jsonl(path):
                rows[str(row["id"])] = row
                where[f"{path}:{lineno}"] = str(row["id"])
        kept = [rows[str(r["id"])] for _, r in read_jsonl(out / "data.jsonl")]
        dropped = [{**d, "id": where.get(d.get("where"), d["id"])} for _, d in read_jsonl(out / "dropped.jsonl")]
        return kept, dropped

    def _evaluate(self, model: str, folder: Path) -> dict:
        """Held-out accuracy (greedy) and, with --eval-samples, pass@k of the round's model."""
        from thinkscale.eval.coverage import coverage_metrics
        from thinkscale.infer.generate import GenerateConfig, generate

        c = self.cfg
        if not c.eval_task:
            return {}
        base = dict(model=model, format=c.format, budgets=[c.budget], max_answer_tokens=c.max_answer_tokens,
                    batch_size=c.gen_batch_size, dtype=c.dtype, limit=c.eval_limit, seed=c.seed)  # fmt: skip
        source = {"data": c.eval_task, "grader": c.grader} if Path(c.eval_task).suffix in (".jsonl", ".parquet") else {"task": c.eval_task}
        greedy = load_records(generate(GenerateConfig(**base, **source), folder / "eval.jsonl", progress=self.progress))
        m = {"eval_task": c.eval_task, "eval_questions": len(greedy),
             "accuracy": sum(bool(r["correct"]) for r in greedy) / len(greedy)}  # fmt: skip
        if c.eval_samples:
            recs = load_records(generate(GenerateConfig(**base, **source, n=c.eval_samples, temperature=c.temperature,
                                                        top_p=c.top_p), folder / "eval_samples.jsonl", progress=self.progress))  # fmt: skip
            cov = coverage_metrics(recs)
            m["pass@k"] = {k: cov["pass@k"][k] for k in cov["chunk_coverage"]}
        return m

    def _dot(self, folder: Path) -> dict:
        """--dot: a DoT model trained on this round's data for a fixed time, its held-out accuracy."""
        if not self.cfg.dot:
            return {}
        from thinkscale.dot.evaluate import DotEvalConfig, eval_dot
        from thinkscale.dot.train import RUN_FILE as DOT_RUN
        from thinkscale.dot.train import DotTrainConfig, train_dot

        c, model = self.cfg, folder / "dot"
        if not (model / "config.json").exists():
            from thinkscale.models import fast_bf16

            # bf16 autocast only where the CPU has bf16 units (emulated elsewhere: ~3x slower)
            train_dot(DotTrainConfig(data=str(folder / "data.jsonl"), out=str(model), train_seconds=c.dot_train_seconds,
                                     seed=c.seed, resume=(model / DOT_RUN).exists(), bf16=fast_bf16()))  # fmt: skip
        recs = load_records(eval_dot(DotEvalConfig(model=str(model), out=str(folder / "dot-eval"), data=c.eval_task,
                                                   limit=c.eval_limit, steps=[c.dot_steps], seed=c.seed)))  # fmt: skip
        return {"dot_accuracy": sum(bool(r["correct"]) for r in recs) / len(recs), "dot_train_seconds": c.dot_train_seconds}

    # -- rounds -----------------------------------------------------------------------------------
    def round_zero(self) -> str:
        folder = self.out / "round-0"
        if (folder / "metrics.json").exists():
            return str(folder / "model")
        from thinkscale.data.traces import load_traces

        folder.mkdir(parents=True, exist_ok=True)
        seed_file = folder / "seed.jsonl"
        if not seed_file.exists():
            write_jsonl_atomic(seed_file, ({**t, "source": t.get("source") or "seed"} for t in load_traces(self.cfg.seed_data)))
        kept, dropped = self._curate([seed_file], folder / "curate")
        write_jsonl_atomic(folder / "data.jsonl", kept)
        model = self._train(folder / "data.jsonl", folder / "model", self.cfg.model)
        metrics = {"round": 0, "train_rows": len(kept), "kept": len(kept), **self._evaluate(model, folder),
                   **self._dot(folder)}  # fmt: skip
        write_json_atomic(folder / "funnel.json", {"seed": len(kept) + len(dropped), "kept": len(kept),
                                                    "dropped": _reasons(dropped)})  # fmt: skip
        write_json_atomic(folder / "metrics.json", metrics)
        return model

    def round(self, r: int, prev_model: str) -> str:
        c = self.cfg
        folder, prev = self.out / f"round-{r}", self.out / f"round-{r - 1}"
        if (folder / "metrics.json").exists():
            return str(folder / "model")
        folder.mkdir(parents=True, exist_ok=True)
        prev_rows = [row for _, row in read_jsonl(prev / "data.jsonl")]
        solved = {row.get("synth_question") for row in prev_rows}
        open_qs = [q for q in self.questions if q.id not in solved]
        gold_for = (lambda q: q.gold) if c.verify == "gold" else (lambda q: None)  # vote never sees gold
        samples = by_question(self._generate(prev_model, [(q.id, q.question, gold_for(q)) for q in open_qs],
                                             folder / "samples.jsonl", c.samples))  # fmt: skip
        verified, reasons = self._verify(samples, folder / "checks.jsonl", prev_model)
        corrected = self._correct(samples, verified, reasons, folder, prev_model)
        candidates = [to_trace(rec, self.by_id[q].question, q, r, how) for q, (rec, how) in {**verified, **corrected}.items()]
        write_jsonl_atomic(folder / "candidates.jsonl", candidates)
        inputs = [prev / "data.jsonl"] + ([folder / "candidates.jsonl"] if candidates else [])  # an empty file is an error there
        kept, dropped = self._curate(inputs, folder / "curate")
        write_jsonl_atomic(folder / "data.jsonl", kept)
        new = [row for row in kept if row.get("round") == r]
        funnel = {
            "questions_open": len(open_qs), "sampled": sum(len(v) for v in samples.values()),
            "verified": len(verified), "corrected": len(corrected),
            "rationalized": sum(how == "hint" for _, how in corrected.values()),
            "candidates": len(candidates), "kept": len(new),
            "dropped": {**_reasons([{"reason": why} for q, why in reasons.items() if q not in corrected]),
                        **_reasons([d for d in dropped if d["id"].startswith(f"synth-r{r}-")])},
        }  # fmt: skip
        write_json_atomic(folder / "funnel.json", funnel)
        init = c.model if c.retrain == "from-base" else prev_model
        model = self._train(folder / "data.jsonl", folder / "model", init)
        write_json_atomic(folder / "metrics.json", {"round": r, "train_rows": len(kept), "kept": len(new),
                                                     **self._evaluate(model, folder), **self._dot(folder)})  # fmt: skip
        return model

    def _verify(self, samples: dict[str, list[dict]], checks: Path, model: str) -> tuple[dict, dict]:
        """({qid: (record, how)} verified, {qid: reason} not)."""
        from thinkscale.tasks.grading import grade

        c = self.cfg
        equal = lambda a, b: grade(c.grader, a, b)  # noqa: E731
        verified, reasons = {}, {}
        for q, rs in samples.items():
            kept, why = verify_gold(rs) if c.verify == "gold" else verify_vote(rs, c.min_agreement, equal)
            if kept:
                verified[q] = kept
            else:
                reasons[q] = why
        if c.verify == "vote+check":
            verified, rejected = self._check(verified, checks, model)
            reasons.update(dict.fromkeys(rejected, "check_rejected"))
        return {q: (rs[0], c.verify) for q, rs in verified.items()}, reasons

    def _check(self, verified: dict[str, list[dict]], path: Path, model: str) -> tuple[dict, list[str]]:
        """The model's yes/no on every majority solution (greedy, no thinking): the confirmed ones."""
        from thinkscale.infer.judge import parse_verdict

        prompts = [(f"{q}--{r.get('sample', 0)}", check_prompt(self.by_id[q].question, r.get("thinking") or "",
                                                                str(r.get("pred") or r.get("answer") or "")), None)
                   for q, rs in verified.items() for r in rs]  # fmt: skip
        verdicts = {rec["id"]: parse_verdict(rec.get("answer") or "")
                    for rec in self._generate(model, prompts, path, 1, greedy=True, fmt="plain", max_answer_tokens=4)}  # fmt: skip
        confirmed = {q: [r for r in rs if verdicts.get(f"{q}--{r.get('sample', 0)}")] for q, rs in verified.items()}
        return {q: rs for q, rs in confirmed.items() if rs}, [q for q, rs in confirmed.items() if not rs]

    def _correct(self, samples, verified, reasons, folder: Path, model: str) -> dict:
        """Self-correction of the questions with nothing verified: {qid: (record, how)}."""
        c = self.cfg
        failed = [q for q in samples if q not in verified]
        if c.self_correct == "off" or not failed:
            return {}
        if c.self_correct == "hint":
            prompts = [(q, hint_prompt(self.by_id[q].question, self.by_id[q].gold), self.by_id[q].gold) for q in failed]
            recs = by_question(self._generate(model, prompts, folder / "corrections.jsonl", 1))
            return {q: (rs[0], "hint") for q, rs in recs.items() if rs[0].get("correct")}  # reaches the hinted answer
        first = {q: samples[q][0] for q in failed}
        prompts = [(q, retry_prompt(self.by_id[q].question, first[q].get("thinking") or "",
                                    str(first[q].get("pred") or first[q].get("answer") or "")),
                    self.by_id[q].gold if c.verify == "gold" else None) for q in failed]  # fmt: skip
        recs = by_question(self._generate(model, prompts, folder / "corrections.jsonl", c.samples))
        again, _ = self._verify(recs, folder / "correction_checks.jsonl", model)
        return {q: (rec, "retry") for q, (rec, _) in again.items()}

    def summary(self) -> dict:
        rounds = []
        for folder in sorted(self.out.glob("round-*"), key=lambda p: int(p.name.split("-")[1])):
            if (folder / "metrics.json").exists():
                rounds.append({**json.loads((folder / "metrics.json").read_text()),
                               "funnel": json.loads((folder / "funnel.json").read_text())})  # fmt: skip
        report = {"config": asdict(self.cfg), "rounds": rounds}
        write_json_atomic(self.out / "synth.json", report)
        plot_synth(report, self.out / "synth.png")
        return report


def _reasons(dropped: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dropped:
        out[d["reason"]] = out.get(d["reason"], 0) + 1
    return out


def plot_synth(report: dict, path: Path) -> None:
    """Kept traces per round (bars) and the held-out accuracy / pass@k of each round's model."""
    from thinkscale.plots import figure

    rounds = report["rounds"]
    if not rounds:
        return
    with figure(path) as (fig, ax):
        xs = [r["round"] for r in rounds]
        ax.bar(xs, [r["train_rows"] for r in rounds], color="0.85", label="training traces")
        ax.bar(xs, [r["kept"] if r["round"] else 0 for r in rounds], color="C0", alpha=0.6, label="kept this round")
        ax.set_xlabel("round")
        ax.set_ylabel("traces")
        ax.set_xticks(xs)
        if any("accuracy" in r for r in rounds):
            acc = ax.twinx()
            acc.plot(xs, [r.get("accuracy") for r in rounds], "o-", color="C1", label="held-out accuracy (greedy)")
            for k in (rounds[0].get("pass@k") or {}):
                acc.plot(xs, [r["pass@k"][k] for r in rounds], "--", alpha=0.6, label=f"pass@{k}")
            if any("dot_accuracy" in r for r in rounds):
                acc.plot(xs, [r.get("dot_accuracy") for r in rounds], "s-", color="C3", label="DoT trained on the round's data")
            acc.set_ylim(0, 1)
            acc.set_ylabel("held-out")
            acc.legend(loc="upper left", fontsize=7)
        ax.legend(loc="upper right", fontsize=7)
        ax.set_title("synth rounds")


def synth(cfg: SynthConfig, out: str | Path, progress: bool = True) -> dict:
    """Run (or resume) every round; returns synth.json's content."""
    cfg.validate()
    out = Path(out)
    _check_run(out, cfg)
    loop = Loop(cfg, out, progress)  # reads the questions: bad input fails before anything is written
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / RUN_FILE).exists():
        write_json_atomic(out / RUN_FILE, {"config": asdict(cfg)})
    try:
        model = loop.round_zero()
        loop.summary()
        for r in range(1, cfg.rounds + 1):
            model = loop.round(r, model)
            loop.summary()
    except ThinkscaleError:
        if created and not list(out.glob("round-*/metrics.json")):
            shutil.rmtree(out, ignore_errors=True)  # bad input found late leaves nothing
        raise
    return loop.summary()


