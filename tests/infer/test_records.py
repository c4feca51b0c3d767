"""Resume is exactly-once: a truncated last line is dropped and regenerated, nothing duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from thinkscale import ThinkscaleError
from thinkscale.records import RecordWriter, load_records, record_key


def rec(i, budget=8):
    return {
        "task": "t",
        "id": f"q{i}",
        "sample": 0,
        "budget": budget,
        "num_ignore": 0,
        "correct": True,
    }


def test_truncated_last_line_is_cut_and_keys_skip(tmp_path):
    path = tmp_path / "r.jsonl"
    with RecordWriter(path) as w:
        for i in range(3):
            w.write(rec(i))
    with open(path, "a") as f:
        f.write('{"task": "t", "id": "q3", "sam')  # a crash mid-line
    with RecordWriter(path) as w:
        assert len(w.done) == 3
        for i in range(5):
            w.write(rec(i))  # q0..q2 skipped, q3 and q4 written
    keys = [record_key(r) for r in load_records(path)]
    assert len(keys) == len(set(keys)) == 5
    assert path.read_text().endswith("\n")


def test_malformed_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(rec(0)) + "\nnot json\n" + json.dumps(rec(1)) + "\n")
    with pytest.raises(ThinkscaleError, match=r"r.jsonl:2"):
        load_records(path)


GEN = [sys.executable, "-m", "thinkscale.cli", "generate", "--data", "{data}", "--question-field", "q", "--answer-field",
       "a", "--id-field", "id", "--model", "{model}", "--budget", "24", "--n", "2", "--temperature", "1.0",
       "--max-answer-tokens", "8", "--batch-size", "2", "--out", "{out}"]  # fmt: skip


def test_killed_process_resumes_exactly_once(tmp_path, tiny_checkpoint):
    data = tmp_path / "q.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "q": f"What is {i}+{i}?", "a": str(2 * i)}) + "\n"
            for i in range(40)
        )
    )
    out = tmp_path / "results.jsonl"
    cmd = [c.format(data=data, model=tiny_checkpoint, out=out) for c in GEN]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(load_records(out))
    assert 0 < partial < 80, partial  # it was really interrupted mid-run
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    records = load_records(out)
    keys = [record_key(r) for r in records]
    assert len(keys) == len(set(keys)) == 80
    # a third run has nothing to do and changes nothing
    before = out.read_bytes()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert out.read_bytes() == before


def test_grading_workers_exit_when_their_parent_is_killed(tmp_path):
    """SIGKILL skips cleanup; the grading pool's workers must not linger as orphans."""
    script = tmp_path / "child.py"
    script.write_text(
        "import time\n"
        "from thinkscale.tasks.grading import GradingPool\n"
        "if __name__ == '__main__':\n"
        "    pool = GradingPool(workers=1)\n"
        "    pool.grade([('math', '1', '1')])\n"
        "    print(list(pool._pool._processes), flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [
            w
            for w in workers
            if os.path.exists(f"/proc/{w}")
            and "zombie" not in open(f"/proc/{w}/status").read().lower()
        ]
    assert not alive, alive


def test_resume_with_other_settings_is_refused(tmp_path, tiny_checkpoint, capsys):
    from thinkscale.cli import main

    data = tmp_path / "q.jsonl"
    data.write_text('{"q": "1+1?", "a": "2"}\n')
    out = tmp_path / "r.jsonl"
    base = ["generate", "--data", str(data), "--question-field", "q", "--answer-field", "a", "--model",
            str(tiny_checkpoint), "--budget", "4", "--max-answer-tokens", "2", "--out", str(out)]  # fmt: skip
    assert main(base) == 0
    before = out.read_bytes()
    assert main([*base, "--temperature", "0.7", "--seed", "3"]) != 0
    err = capsys.readouterr().err
    assert "other settings" in err and "temperature: 0.0 there, 0.7 now" in err
    assert out.read_bytes() == before  # nothing written
    assert main([*base, "--budget", "8"]) == 0  # same settings, a new budget: fine
    assert len(load_records(out)) == 2
