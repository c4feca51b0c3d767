"""`data hybrid`: one <think> and one <short> row per question, adjacent, with a funnel."""

from __future__ import annotations

import json

import pytest

from thinkscale import ThinkscaleError
from thinkscale.data.hybrid import HybridPairsConfig, build_pairs

TRACES = [
    {"id": "a", "question": "What is 2 + 2?", "thinking": "2+2+0=4, write 4 carry 0", "answer": "4"},
    {"id": "b", "question": "What is 5 + 7?", "thinking": "5+7+0=12, write 2 carry 1", "answer": "12"},
    {"id": "c", "question": "What is 9 + 9?", "thinking": "9+9+0=18, write 8 carry 1", "answer": "18"},
    {"id": "d", "question": "What is 1 + 1?", "thinking": "1+1+0=2, write 2 carry 0", "answer": "2"},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pairs_from_the_answer(tmp_path):
    data = write(tmp_path / "t.jsonl", TRACES)
    funnel = build_pairs(HybridPairsConfig(data=str(data), out=str(tmp_path / "p")))
    rows = read(tmp_path / "p" / "data.jsonl")
    assert [r["id"] for r in rows] == [f"{t['id']}-{m}" for t in TRACES for m in ("think", "short")]
    for think, short, t in zip(rows[::2], rows[1::2], TRACES):  # adjacent, one pair per question
        assert think["pair"] == short["pair"] == t["id"]
        assert (think["mode"], think["thinking"], think["answer"]) == ("think", t["thinking"], t["answer"])
        assert (short["mode"], short["thinking"], short["answer"]) == ("short", "", t["answer"])
    assert funnel == json.loads((tmp_path / "p" / "funnel.json").read_text())
    assert funnel["rows_in"] == 4 and funnel["pairs_out"] == 4 and funnel["rows_out"] == 8
    assert funnel["rows_in"] == funnel["pairs_out"] + funnel["shorts_wrong"] + funnel["shorts_truncated"] + \
        funnel["shorts_empty"]  # fmt: skip


def test_pairs_from_a_model_keep_only_correct_uncut_shorts_and_resume(tmp_path, tiny_checkpoint):
    data = write(tmp_path / "t.jsonl", TRACES)
    cfg = HybridPairsConfig(data=str(data), out=str(tmp_path / "p"), short_from="model",
                            short_model=str(tiny_checkpoint), grader="numeric", max_answer_tokens=4)  # fmt: skip
    with pytest.raises(ThinkscaleError, match="no pairs"):  # a random model answers nothing right
        build_pairs(cfg)
    shorts = tmp_path / "p" / "shorts.jsonl"
    recs = read(shorts)
    assert len(recs) == 4 and not any(r["correct"] for r in recs) and not (tmp_path / "p" / "data.jsonl").exists()
    # pretend the model had answered: a right one, a right but cut one, an empty one, a wrong one
    edits = {"a": ("4", True, "stop"), "b": ("12", True, "length"), "c": ("", False, "stop"), "d": ("3", False, "stop")}
    for r in recs:
        r["answer"], r["correct"], r["finish_reason"] = edits[r["id"]]
    write(shorts, recs)
    funnel = build_pairs(cfg)  # resumes: every answer is on file, nothing is generated again
    assert read(shorts) == recs
    assert (funnel["pairs_out"], funnel["shorts_truncated"], funnel["shorts_empty"], funnel["shorts_wrong"]) == (1, 1, 1, 1)
    rows = read(tmp_path / "p" / "data.jsonl")
    assert [(r["id"], r["answer"]) for r in rows] == [("a-think", "4"), ("a-short", "4")]


def test_duplicate_ids_are_refused_before_anything_is_written(tmp_path):
    data = write(tmp_path / "t.jsonl", TRACES + [TRACES[0]])
    with pytest.raises(ThinkscaleError, match="id 'a' appears twice"):
        build_pairs(HybridPairsConfig(data=str(data), out=str(tmp_path / "p")))
    assert not (tmp_path / "p").exists()
