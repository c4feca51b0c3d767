"""The synthetic-data loop's experiment (issue: synth loop), end to end and resumable.

Setting: the embedded model starts weak and labelled data is the limit. A small seed of labelled
`arith-mul` traces (products of 1-2 digit numbers with partial-product traces) and many
unlabelled questions of the same kind; `thinkscale synth --verify vote` runs 3 rounds (each
retrains from the base model on seed + kept, ReST-EM style), and a DoT reasoner is trained on each
round's data for the same time. The unlabelled questions' answers are written to a separate file
the loop never reads; they only measure how many kept traces are actually right.

Prints (and writes to --json-out) per round: training traces, kept traces, the share of kept
traces whose answer is right, held-out accuracy of the system-1 model (greedy, `arith-mul`), and
the DoT model's held-out accuracy. Rerun to resume.

    python benchmarks/exp_synth.py --out runs/synth [--seed-size 64] [--questions 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from exp_hybrid_warmup import cpu_name  # noqa: E402


def dot_steps(model: Path) -> int | None:
    """Steps the round's DoT model trained: --dot-train-seconds / the step time measured at its
    start, so other load on the machine at that moment changes it."""
    state = model / "trainer_state.json"
    return json.loads(state.read_text())["global_step"] if state.exists() else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/synth")
    ap.add_argument("--seed-size", type=int, default=64)
    ap.add_argument("--questions", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--min-agreement", type=float, default=0.75)
    ap.add_argument("--max-steps", type=int, default=40)
    ap.add_argument("--dot-train-seconds", type=float, default=180.0)
    ap.add_argument("--eval-limit", type=int, default=40)
    ap.add_argument("--json-out", default="benchmarks/results/synth_rounds.json")
    args = ap.parse_args()

    from thinkscale.data.arith import MUL_CONFIG, arith_traces
    from thinkscale.records import write_json_atomic, write_jsonl_atomic
    from thinkscale.synth.loop import SynthConfig, synth

    out = Path(args.out)
    inputs = out.parent / f"{out.name}-inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    traces, seen = [], set()
    for t in arith_traces(MUL_CONFIG):  # distinct questions: the seed, then the unlabelled pool
        if t["question"] not in seen:
            seen.add(t["question"])
            traces.append(t)
    seed, pool = traces[: args.seed_size], traces[args.seed_size : args.seed_size + args.questions]
    if not (inputs / "seed.jsonl").exists():
        write_jsonl_atomic(inputs / "seed.jsonl", seed)
        write_jsonl_atomic(inputs / "questions.jsonl", ({"id": t["id"], "question": t["question"]} for t in pool))
        write_jsonl_atomic(inputs / "hidden_gold.jsonl", ({"id": t["id"], "answer": t["answer"]} for t in pool))
    gold = {json.loads(x)["id"]: json.loads(x)["answer"] for x in (inputs / "hidden_gold.jsonl").read_text().splitlines()}

    cfg = SynthConfig(seed_data=str(inputs / "seed.jsonl"), questions=str(inputs / "questions.jsonl"), rounds=args.rounds,
                      samples=args.samples, verify="vote", min_agreement=args.min_agreement, max_steps=args.max_steps,
                      eval_task="arith-mul", eval_limit=args.eval_limit, dot=True,
                      dot_train_seconds=args.dot_train_seconds, dtype="float32")  # fmt: skip
    report = synth(cfg, out)
    rows = []
    for r in report["rounds"]:
        data = [json.loads(x) for x in (out / f"round-{r['round']}" / "data.jsonl").read_text().splitlines()]
        kept = [d for d in data if d.get("round") == r["round"] and r["round"] > 0]
        right = [d for d in kept if gold.get(d["synth_question"]) is not None and
                 str(d["answer"]).strip() == gold[d["synth_question"]]]  # fmt: skip
        rows.append({
            "round": r["round"], "training_traces": r["train_rows"], "kept": len(kept),
            "kept_correct_share": round(len(right) / len(kept), 4) if kept else None,
            "held_out_accuracy": r.get("accuracy"), "dot_accuracy": r.get("dot_accuracy"),
            "dot_train_steps": dot_steps(out / f"round-{r['round']}" / "dot"), "funnel": r["funnel"],
        })  # fmt: skip
    result = {"cpu": cpu_name(), "setting": vars(args), "rounds": rows}
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.json_out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
