"""The pipeline: funnel counts add up, a crash resumes from the last finished stage, bad input
gets a clear error or a per-row reason, and the CLI runs it with datatrove's local executor."""

import json
import os

import pytest

from thinkscale import ThinkscaleError
from thinkscale.cli import main
from thinkscale.data import curate as curate_mod
from thinkscale.data.curate import CurateConfig, curate
from thinkscale.data.executors import ExecutorConfig

STAGES = ["quality", "decontaminate", "dedup", "select"]


def config(tmp_path, out="out", **kw):
    cfg = CurateConfig(data=["gsm8k-train"], out=str(tmp_path / out), limit=150, stages=STAGES,
                       executor=ExecutorConfig(tasks=2, workers=2), **kw)  # fmt: skip
    cfg.select.select = 40
    return cfg


def lines(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_funnel_adds_up_and_every_drop_has_a_reason(tmp_path):
    report = curate(config(tmp_path), progress=False)
    out = tmp_path / "out"
    funnel = json.loads((out / "funnel.json").read_text())
    assert [s["name"] for s in funnel["stages"]] == ["validate", *STAGES]
    for prev, stage in zip(funnel["stages"], funnel["stages"][1:]):
        assert stage["in"] == prev["out"]
    for stage in funnel["stages"]:
        assert stage["in"] == stage["out"] + sum(stage["dropped"].values())
    assert funnel["stages"][0]["out"] == 150 and report["kept"] == 40
    assert len(lines(out / "data.jsonl")) == 40
    dropped = lines(out / "dropped.jsonl")
    total = sum(sum(s["dropped"].values()) for s in funnel["stages"])
    assert len(dropped) == total and all(d["reason"] and d["stage"] for d in dropped)
    kept_ids = {r["id"] for r in lines(out / "data.jsonl")}
    assert not kept_ids & {d["id"] for d in dropped}
    assert (out / "funnel.png").stat().st_size > 10_000
    assert all(set(r) >= {"id", "question", "thinking", "answer", "trace_tokens"}
               for r in lines(out / "data.jsonl"))  # fmt: skip


def test_a_crash_resumes_from_the_last_finished_stage(tmp_path, monkeypatch):
    reference = curate(config(tmp_path, out="reference"), progress=False)
    real_dedup = curate_mod.__dict__.get("run_dedup")
    assert real_dedup is None  # imported lazily, patched at its home below

    import thinkscale.data.dedup as dedup

    original = dedup.run_dedup

    def crash(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(dedup, "run_dedup", crash)
    with pytest.raises(RuntimeError):
        curate(config(tmp_path), progress=False)
    out = tmp_path / "out"
    assert not (out / "data.jsonl").exists()  # nothing half-written
    finished = out / "stages" / "02-decontaminate" / "done.json"
    stamp = finished.stat().st_mtime_ns
    monkeypatch.setattr(dedup, "run_dedup", original)
    resumed = curate(config(tmp_path), progress=False)
    assert finished.stat().st_mtime_ns == stamp  # not run again
    assert resumed["stages"] == [
        {**s, "seconds": r["seconds"]} for s, r in zip(reference["stages"], resumed["stages"])
    ]
    assert lines(out / "data.jsonl") == lines(tmp_path / "reference" / "data.jsonl")
    # changing a stage's settings reruns it and everything after it, not before
    cfg = config(tmp_path)
    cfg.select.select = 30
    assert curate(cfg, progress=False)["kept"] == 30
    assert finished.stat().st_mtime_ns == stamp


def test_bad_rows_are_dropped_with_file_and_line(tmp_path, capsys):
    good = {"question": "What is two plus two?", "thinking": "two and two make four", "answer": "4"}
    path = tmp_path / "traces.jsonl"
    with open(path, "wb") as f:
        f.write((json.dumps({**good, "id": "a"}) + "\n").encode())
        f.write(b'{"question": "broken json\n')
        f.write((json.dumps({"id": "c", "question": "q?", "answer": "1"}) + "\n").encode())
        f.write(b'{"id": "d", "question": "caf\xe9", "thinking": "x y z", "answer": "1"}\n')
        f.write((json.dumps({**good, "id": "a", "question": "Same id again?"}) + "\n").encode())
        f.write(
            (json.dumps({**good, "id": "f", "question": "What is three plus one?"}) + "\n").encode()
        )
    cfg = CurateConfig(data=[str(path)], out=str(tmp_path / "out"), stages=["quality"])
    report = curate(cfg, progress=False)
    assert report["stages"][0]["dropped"] == {
        "malformed_json": 1, "missing_field:thinking": 1, "invalid_utf8": 1, "duplicate_id": 1,
    }  # fmt: skip
    where = {d["reason"]: d["where"] for d in lines(tmp_path / "out" / "dropped.jsonl")}
    assert where["malformed_json"] == f"{path}:2" and where["invalid_utf8"] == f"{path}:4"
    assert f"{path}:3: missing_field:thinking (row dropped)" in capsys.readouterr().err
    assert report["kept"] == 2


@pytest.mark.parametrize(
    "content, stages, message",
    [
        ("", ["quality"], r"no valid traces \(empty input\)"),
        ('{"id": 1, "question": "q"}\n', ["quality"], "no valid traces"),
        ('{"question": "q", "thinking": "a b c", "answer": "1"}\n', ["tidy"], "unknown stage"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_no_result(tmp_path, content, stages, message):
    path = tmp_path / "traces.jsonl"
    path.write_text(content)
    cfg = CurateConfig(data=[str(path)], out=str(tmp_path / "out"), stages=stages)
    with pytest.raises(ThinkscaleError, match=message):
        curate(cfg, progress=False)
    assert not (tmp_path / "out" / "data.jsonl").exists()
    assert not (tmp_path / "out" / "funnel.json").exists()


def test_cli_runs_single_stages_and_the_pipeline(tmp_path, capsys):
    out = tmp_path / "q"
    rc = main(["data", "quality", "--data", "champ", "--out", str(out), "--limit", "40"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "validate" in printed and "quality" in printed and "kept" in printed
    stages = [s["name"] for s in json.loads((out / "funnel.json").read_text())["stages"]]
    assert stages == ["validate", "quality"]
    rc = main(["data", "curate", "--data", "champ,gsm8k-train", "--out", str(tmp_path / "c"),
               "--limit", "60", "--stages", "quality,dedup", "select", "--select", "5",
               "--tasks", "2"])  # fmt: skip
    assert rc == 0
    funnel = json.loads((tmp_path / "c" / "funnel.json").read_text())
    assert [s["name"] for s in funnel["stages"]] == ["validate", "quality", "dedup", "select"]
    assert funnel["kept"] == 5 and funnel["data"] == ["champ", "gsm8k-train"]
    rc = main(["data", "select", "--data", "nope.jsonl", "--out", str(tmp_path / "x")])
    assert rc == 2 and "nope.jsonl: file not found" in capsys.readouterr().err
    assert os.listdir(tmp_path / "c" / "stages")
