import pytest

from thinkscale import ThinkscaleError
from thinkscale.data.quality import QualityConfig, quality_reason

GOOD = {
    "question": "How many positive divisors does 36 have?",
    "thinking": "36 = 2^2 * 3^2, so it has (2+1)(2+1) = 9 divisors.",
    "answer": "9",
}


def reason(**changes):
    return quality_reason({**GOOD, **changes}, QualityConfig())


def test_a_clean_trace_passes():
    assert reason() is None


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"thinking": "Error code: 429 - rate limit exceeded"}, "api_error"),
        ({"answer": "Internal Server Error"}, "api_error"),
        ({"thinking": "   "}, "empty_trace"),
        ({"thinking": "so 9"}, "too_short_trace"),
        ({"question": "Look at ![Image](fig1.png). How many triangles?"}, "image_reference"),
        ({"question": "In the diagram, [asy]draw((0,0)--(1,1));[/asy] find x."}, "image_reference"),
        ({"question": "As shown in the figure below, find the area."}, "image_reference"),
        (
            {"question": "Count the squares:\n+---+---+\n|   |   |\n+---+---+\nHow many?"},
            "ascii_art",
        ),
        ({"question": "Answer both:\n1. Find x.\n3. Find y."}, "inconsistent_numbering"),
        ({"question": "Answer both:\n(2) Find x.\n(3) Find y."}, "inconsistent_numbering"),
    ],
)
def test_each_filter_drops_and_names_itself(changes, expected):
    assert reason(**changes) == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"thinking": "The error in the estimate is small, so the limit is 2 and the answer is 9."},
        {"question": "Answer both:\n1. Find x.\n2. Find y."},  # consistent numbering
        {"question": "Compute 3 - 2 + 5 * 4."},  # arithmetic is not ASCII art
        {"question": "Find x if |x - 3| = 5 and x > 0."},
        {"question": "A table costs $40 and a chair costs $15. What do 2 tables cost?"},
    ],
)
def test_lookalikes_pass(changes):
    assert reason(**changes) is None


def test_asy_is_kept_for_listed_sources_and_filters_can_be_chosen():
    row = {
        **GOOD,
        "question": "[asy]draw(circle((0,0),1));[/asy] Find the radius.",
        "source": "AIME",
    }
    assert quality_reason(row, QualityConfig()) is None
    assert quality_reason({**row, "source": "math"}, QualityConfig()) == "image_reference"
    assert quality_reason({**row, "source": "math"}, QualityConfig(filters=["api_error"])) is None
    with pytest.raises(ThinkscaleError, match="unknown quality filter"):
        QualityConfig(filters=["nope"]).validate()
