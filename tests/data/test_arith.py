import re

from hypothesis import given, settings
from hypothesis import strategies as st

from thinkscale.data.arith import ArithConfig, addition_trace, arith_traces, multiplication_trace


@given(st.integers(0, 10**6), st.integers(0, 10**6))
@settings(max_examples=200, deadline=None)
def test_traces_are_arithmetically_right(a, b):
    add = addition_trace(a, b).splitlines()
    assert add[-1] == f"so {a}+{b}={a + b}"
    for line in add[:-1]:  # every column step is right
        m = re.fullmatch(r"(\d)\+(\d)\+(\d)=(\d+), write (\d) carry (\d)", line)
        if m:
            x, y, c, s, d, c2 = map(int, m.groups())
            assert x + y + c == s and d == s % 10 and c2 == s // 10
    mul = multiplication_trace(a, b).splitlines()
    assert mul[-1] == f"so {a}*{b}={a * b}"


def test_generator_is_seeded_and_answers_match_questions():
    a = arith_traces(ArithConfig(op="mul", min_digits=1, max_digits=4, count=50, seed=1))
    assert a == arith_traces(ArithConfig(op="mul", min_digits=1, max_digits=4, count=50, seed=1))
    assert a != arith_traces(ArithConfig(op="mul", min_digits=1, max_digits=4, count=50, seed=2))
    for r in a:
        x, y = map(int, re.findall(r"\d+", r["question"]))
        assert int(r["answer"]) == x * y
    lengths = {len(r["thinking"].splitlines()) for r in a}
    assert len(lengths) > 3  # varied lengths, so longer thinking is sometimes needed
