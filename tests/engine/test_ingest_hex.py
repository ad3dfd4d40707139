"""The names of lines without an invoice: 16 hex digits of the line hash (bytes.hex)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from engine.ingest.transactions import hex_digits


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=50))
def test_hex_digits_are_the_two_complement_bytes_big_endian(values: list[int]) -> None:
    hashes = pd.Series(values, dtype="int64", index=pd.RangeIndex(len(values)) * 3)
    digits = hex_digits(hashes)
    assert digits.tolist() == [format(value % 2**64, "016x") for value in values]
    assert digits.index.equals(hashes.index)
    assert all(isinstance(text, str) for text in digits)


def test_hex_digits_of_known_hashes() -> None:
    digits = hex_digits(pd.Series([0, -1, 1, 2**63 - 1, -(2**63)], dtype="int64"))
    assert digits.tolist() == ["0000000000000000", "ffffffffffffffff", "0000000000000001",
                               "7fffffffffffffff", "8000000000000000"]
