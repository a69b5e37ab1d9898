"""Column encodings: the fast explanation encoder writes exactly what the plain one would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.ledger.codec import ExplanationEncoder, encode_json, explanation_to_json
from syncd.model import Explanation, ExplanationStep

_text = st.text(max_size=12)  # any Unicode: quotes, backslashes, control characters, emoji
_steps = st.lists(
    st.builds(ExplanationStep, _text, st.integers(-(10**6), 10**6), st.integers(0, 10**6), _text),
    max_size=4,
).map(tuple)
_explanations = st.builds(
    Explanation,
    _text,
    _text,
    st.dictionaries(_text, st.integers(-(10**15), 10**15), max_size=5),
    _steps,
    st.none() | _text,
    st.integers(0, 10**12),
)


@given(st.lists(_explanations, max_size=6))
def test_encoder_matches_the_plain_encoding(explanations: list[Explanation]) -> None:
    encoder = ExplanationEncoder()
    for explanation in explanations:
        assert encoder.encode(explanation) == encode_json(explanation_to_json(explanation))


def test_shared_parts_are_encoded_once_and_never_confused() -> None:
    inputs = {"activeants/available/": 12, "reserved:ankorstore:O1": 2}
    steps = (ExplanationStep("pool", 0, 12, "available at activeants"),)
    first = Explanation("ankorstore", "A", inputs, steps, None, 10)
    twin = Explanation("fabric", "A", inputs, steps, None, 10)
    encoder = ExplanationEncoder()
    assert encoder.encode(first) == encode_json(explanation_to_json(first))
    assert encoder.encode(twin) == encode_json(explanation_to_json(twin))
    # An equal-looking but different mapping is encoded on its own.
    other = Explanation("fabric", "B", {"activeants/available/": 3}, steps, "C", 3)
    assert encoder.encode(other) == encode_json(explanation_to_json(other))
