"""The token modifiers :in, :not-in, :below, :above on every store (the SQLite-only originals are in
tests/api/test_search_terminology.py; here the contract fixtures run them per store)."""

from __future__ import annotations

from tests.api.test_search_terminology import (
    data,
    test_below_and_above_in_a_hierarchy,
    test_chained_and_has,
    test_errors_name_the_parameter,
    test_in_a_value_set,
    test_not_in_a_value_set,
)

__all__ = [
    "data",
    "test_below_and_above_in_a_hierarchy",
    "test_chained_and_has",
    "test_errors_name_the_parameter",
    "test_in_a_value_set",
    "test_not_in_a_value_set",
]
