import pytest

from thinkscale.tasks.extract import (
    after_answer_marker,
    extract_math,
    extract_number,
    gsm8k_gold,
    last_boxed,
)

MATH_CASES = [
    ("so \\boxed{5}", "5"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{ {a}+{b} }", "{a}+{b}"),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed 7", "7"),
    ("\\fbox{9}", "9"),
    ("$\\boxed{x^2+1}$.", "x^2+1"),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}"),
    ("Answer: 42", "42"),
    ("Final Answer: 3/4.", "3/4"),
    ("Final Answer: $\\frac{3}{4}$", "\\frac{3}{4}"),
    ("The answer is: 12", "12"),
    ("Answer: 1\nmore text\nAnswer: 2", "2"),
    ("Final Answer: \\boxed{8} Answer: 9", "8"),  # boxed wins over Answer:
    ("unbalanced \\boxed{3 and \\boxed{4}", "4"),
    ("", None),
    ("no answer here", None),
    ("answer: ", None),
]

NUMBER_CASES = [
    ("Final Answer: 18", "18"),
    ("Final Answer: $1,234", "1234"),
    ("Final Answer: 18.", "18"),
    ("Final Answer: 18 dollars", "18"),
    ("Final Answer: 2 * 9 = 18", "18"),
    ("Final Answer: -5", "-5"),
    ("Final Answer: 0.50", "0.5"),
    ("Final Answer: 5.00", "5"),
    ("The total is 7 apples and 8 pears", "8"),
    ("\\boxed{1,000}", "1000"),
    ("Answer: $ 12", "12"),
    ("Answer: none\nSo 3", "3"),
    ("", None),
    ("no digits", None),
]


@pytest.mark.parametrize("text,expected", MATH_CASES)
def test_extract_math(text, expected):
    assert extract_math(text) == expected


@pytest.mark.parametrize("text,expected", NUMBER_CASES)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_nested_braces_and_marker_helpers():
    assert last_boxed("\\boxed{a{b{c}}d}") == "a{b{c}}d"
    assert after_answer_marker("ANSWER: yes") == "yes"
    assert len(MATH_CASES) + len(NUMBER_CASES) >= 30


@pytest.mark.parametrize(
    "solution,gold",
    [("x\n#### 18", "18"), ("#### 1,000", "1000"), ("#### -3", "-3"), ("#### 2.50", "2.5")],
)
def test_gsm8k_gold(solution, gold):
    assert gsm8k_gold(solution) == gold
