import json

import pytest

from thinkscale import ThinkscaleError
from thinkscale.data.curate import CurateConfig, curate
from thinkscale.data.decontaminate import DecontaminateConfig

EVAL_Q = "a farmer has seventeen sheep and all but nine run away so how many are left"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def trace(i, question):
    return {
        "id": f"t{i}",
        "question": question,
        "thinking": "one two three four five",
        "answer": "9",
    }


def test_an_8gram_overlap_is_caught_and_a_7gram_one_is_not(tmp_path):
    words = EVAL_Q.split()
    evals = write_jsonl(tmp_path / "eval.jsonl", [{"question": EVAL_Q, "answer": "9"}])
    rows = [
        # 8 consecutive eval words, with other case and spacing (s1 lowercases and collapses)
        trace(0, "Puzzle: " + "  ".join(w.upper() for w in words[2:10]) + " today?"),
        trace(1, "Puzzle: " + " ".join(words[2:9]) + " today?"),  # only 7 in a row
        trace(2, "Completely unrelated question about prime numbers below twenty?"),
    ]
    cfg = CurateConfig(
        data=[write_jsonl(tmp_path / "train.jsonl", rows)],
        out=str(tmp_path / "out"),
        stages=["decontaminate"],
        decontaminate=DecontaminateConfig(eval_tasks=[evals]),
    )
    report = curate(cfg, progress=False)
    stage = report["stages"][-1]
    assert (stage["in"], stage["out"]) == (3, 2)
    assert stage["dropped"] == {"contaminated:eval": 1}
    kept = [json.loads(line)["id"] for line in open(tmp_path / "out" / "data.jsonl")]
    assert kept == ["t1", "t2"]
    dropped = [json.loads(line) for line in open(tmp_path / "out" / "dropped.jsonl")]
    assert dropped == [{"id": "t0", "stage": "decontaminate", "reason": "contaminated:eval",
                        "ngram": " ".join(words[2:10])}]  # fmt: skip


def test_ngram_size_is_configurable(tmp_path):
    words = EVAL_Q.split()
    evals = write_jsonl(tmp_path / "eval.jsonl", [{"question": EVAL_Q, "answer": "9"}])
    train = write_jsonl(tmp_path / "train.jsonl", [trace(1, " ".join(words[2:9]))])
    cfg = CurateConfig(data=[train], out=str(tmp_path / "out"), stages=["decontaminate"],
                       decontaminate=DecontaminateConfig(eval_tasks=[evals], ngram=7))  # fmt: skip
    assert curate(cfg, progress=False)["stages"][-1]["dropped"] == {"contaminated:eval": 1}


def test_default_index_covers_the_builtin_test_splits(tmp_path):
    from thinkscale.tasks import get_task

    q = get_task("math500").load(limit=1)[0].question
    train = write_jsonl(tmp_path / "train.jsonl", [trace(1, q)])
    cfg = CurateConfig(data=[train], out=str(tmp_path / "out"), stages=["decontaminate"])
    assert len(q.split()) >= 8
    assert curate(cfg, progress=False)["kept"] == 0


def test_unknown_eval_task_is_a_clear_error_before_any_output(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [trace(1, "q")])
    cfg = CurateConfig(data=[train], out=str(tmp_path / "out"), stages=["decontaminate"],
                       decontaminate=DecontaminateConfig(eval_tasks=["aime2099"]))  # fmt: skip
    with pytest.raises(ThinkscaleError, match="unknown eval task 'aime2099'"):
        curate(cfg, progress=False)
    assert not (tmp_path / "out").exists()
