"""The channel conformance suite: `base.py` holds the checks, `test_<channel>.py` runs them for
each channel (docs/channels.md)."""

import pytest

# The checks live in plain modules, not test modules: have pytest explain their asserts too.
pytest.register_assert_rewrite("tests.conformance.base", "tests.conformance.structure")
