"""`nesting_depth`, the first check on every untrusted body: the depth of `[`/`{` outside
strings, against a plain character walk, on generated and hostile texts."""

from __future__ import annotations

import json
import random

import pytest

from services.common.safe_json import UntrustedJsonError, loads_untrusted, nesting_depth


def walked_depth(text: str) -> int:
    """The definition, one character at a time (strings skipped, escapes honoured, an
    unterminated string running to the end)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


ALPHABET = ['"', "\\", "[", "]", "{", "}", "a", ",", ":", " ", "\n", "é"]


@pytest.mark.parametrize("seed", range(20))
def test_random_texts_have_the_walked_depth(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60)))
        assert nesting_depth(text) == walked_depth(text), repr(text)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('{"a": [1, {"b": "]]]"}]}', 3),
        ('{"a": "\\"[[[["}', 1),  # an escaped quote does not end the string
        ('["\\\\", [[]]]', 3),  # an escaped backslash does not escape the quote after it
        ('{"open": "[[[[', 1),  # unterminated: the rest is string
        ("", 0),
    ],
)
def test_brackets_inside_strings_do_not_count(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth == walked_depth(text)


def test_a_deep_body_is_refused_and_a_real_one_parsed() -> None:
    with pytest.raises(UntrustedJsonError) as refused:
        loads_untrusted("[" * 33 + "]" * 33)
    assert refused.value.code == "too_deep"
    body = {"message": {"type": "x", "call": {"id": "c1", "customer": {"number": "+1555"}}}}
    assert loads_untrusted(json.dumps(body).encode()) == body


@pytest.mark.timeout(60)
def test_a_body_of_escaped_quotes_is_read_in_one_pass() -> None:
    # Each quote after the first is escaped: a pattern that retried a string from every quote
    # takes quadratic time here (measured: 4.8 s for 20,000 quotes, so about 8 minutes for
    # these 200,000) and fails on the timeout; one pass takes milliseconds.
    hostile = '"' + '\\"' * 200_000
    assert nesting_depth(hostile) == 0
    assert nesting_depth("[" + hostile) == 1
