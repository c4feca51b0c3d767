import pytest

from thinkscale.tasks import FileTask, get_task
from thinkscale.tasks.grading import GradingPool, math_equal, numeric_equal


def test_numeric_equal():
    assert (
        numeric_equal("18", "18")
        and numeric_equal("1,000", "1000")
        and numeric_equal("2.50", "2.5")
    )
    assert (
        not numeric_equal("17", "18")
        and not numeric_equal(None, "1")
        and not numeric_equal("x", "1")
    )


def test_math_equal_uses_equivalence_not_strings():
    assert math_equal("\\frac{1}{2}", "0.5")
    assert math_equal("\\frac{2}{4}", "\\frac{1}{2}")
    assert not math_equal("\\frac{1}{3}", "\\frac{1}{2}")
    assert not math_equal(None, "1") and not math_equal("", "1")


def test_pool_grades_and_never_hangs():
    with GradingPool(workers=1, timeout=30) as pool:
        got = pool.grade(
            [
                ("math", "\\frac{1}{2}", "0.5"),
                ("numeric", "3", "3"),
                ("math", None, "1"),
                ("math", "2", "3"),
            ]
        )
    assert got == [True, True, False, False]


def test_math500_gold_solutions_agree_with_answers():
    """Grader sanity on real data: the reference solution's boxed answer vs the answer field."""
    task = get_task("math500")
    examples = task.load()
    assert len(examples) == 500
    with GradingPool(workers=2) as pool:
        ok = pool.grade([("math", task.extract(e.meta["solution"]), e.gold) for e in examples])
    assert sum(ok) / len(ok) >= 0.995, sum(ok)


def test_gsm8k_gold_solutions_agree_with_answers():
    task = get_task("gsm8k")
    examples = task.load()
    assert len(examples) == 1319 and len(type(task)("train").load()) == 7473
    ok = [
        task.grade(task.extract(e.meta["solution"].replace("####", "Answer:")), e.gold)
        for e in examples
    ]
    assert all(ok)


def test_math_task_gold_is_last_boxed():
    examples = get_task("math").load()
    assert len(examples) == 5000 and all(e.gold for e in examples)


def test_file_task_errors_name_file_line_and_field(tmp_path):
    from thinkscale import ThinkscaleError

    f = tmp_path / "q.jsonl"
    f.write_text('{"q": "1+1?", "a": "2"}\n{"q": "2+2?"}\n')
    with pytest.raises(ThinkscaleError, match=r"q.jsonl:2: missing field 'a'"):
        FileTask(f, "q", "a").load()
    f.write_text('{"q": "1+1?", "a": "2"}\n{"q": \n')
    with pytest.raises(ThinkscaleError, match=r"q.jsonl:2: malformed JSON"):
        FileTask(f, "q", "a").load()
    f.write_text("\n")
    with pytest.raises(ThinkscaleError, match="empty dataset"):
        FileTask(f, "q", "a").load()


def test_file_task_reads_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "q.parquet"
    pq.write_table(pa.table({"problem": ["1+1?", "2+3?"], "sol": ["2", "5"], "uid": ["a", "b"]}), f)
    ex = FileTask(f, "problem", "sol", "uid").load()
    assert [(e.id, e.gold) for e in ex] == [("a", "2"), ("b", "5")]


def test_pool_timeout_marks_items_wrong_and_never_hangs():
    """With a timeout far below a worker's start-up time every item times out: each is counted
    wrong, the pool is restarted for the rest, and the call returns promptly."""
    import time

    items = [("math", "\\frac{1}{2}", "0.5")] * 3 + [("numeric", "3", "3")]
    start = time.time()
    with GradingPool(workers=1, timeout=0.001) as pool:
        got = pool.grade(items)
    assert got == [False, False, False, True]  # numeric needs no worker
    assert time.time() - start < 30
    with GradingPool(workers=1, timeout=30) as pool:  # and the same items grade fine with time
        assert pool.grade(items) == [True, True, True, True]


def test_a_hung_item_is_logged_by_id_in_one_line_and_counted_wrong(capsys):
    # a worker that has not even started within the timeout stands in for math-verify hanging
    with GradingPool(workers=1, timeout=0.001) as pool:
        got = pool.grade([("math", "\\frac{1}{2}", "0.5")], ids=["gsm8k/q7 sample 0"])
    assert got == [False]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gsm8k/q7 sample 0" in err[0] and "timed out" in err[0], err
