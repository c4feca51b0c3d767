import json

from thinkscale.data.curate import CurateConfig, curate
from thinkscale.data.traces import load_traces


def test_exact_and_reworded_copies_are_dropped_and_distinct_questions_kept(tmp_path):
    rows = load_traces("gsm8k-train", limit=300)
    original, other = rows[10], rows[20]
    words = other["question"].split()
    words[len(words) // 2] = "banana"  # one word reworded
    rows += [
        {**original, "id": "exact-copy", "question": "  " + original["question"].upper() + " "},
        {**other, "id": "reworded-copy", "question": " ".join(words)},
        # same template, other numbers: a different problem, must stay
        {**original, "id": "other-numbers", "question": "What is 17 + 25 and then 4 more?"},
        {**original, "id": "other-numbers-2", "question": "What is 31 + 12 and then 9 more?"},
    ]
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = curate(CurateConfig(data=[str(path)], out=str(tmp_path / "out"), stages=["dedup"]),
                    progress=False)  # fmt: skip
    stage = report["stages"][-1]
    assert stage["dropped"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert stage["in"] == stage["out"] + 2 == len(rows)
    dropped = {json.loads(line)["id"] for line in open(tmp_path / "out" / "dropped.jsonl")}
    # one of each pair goes, whichever datatrove keeps; the other-numbers questions both stay
    assert len(dropped & {"exact-copy", original["id"]}) == 1
    assert len(dropped & {"reworded-copy", other["id"]}) == 1
    kept = {json.loads(line)["id"] for line in open(tmp_path / "out" / "data.jsonl")}
    assert {"other-numbers", "other-numbers-2"} <= kept
