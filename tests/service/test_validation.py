"""The shared request rules (wavemae_service.validation) on their own: fast, no server."""

from __future__ import annotations

import numpy as np
import pytest

from wavemae_service.errors import InvalidInput, PayloadTooLarge
from wavemae_service.validation import (
    check_entry_id,
    check_metadata,
    clean_loc,
    filter_from_text,
    parse_filter,
    unit_rows,
)


@pytest.mark.parametrize(
    ("entry_id", "words"),
    [
        ("", "empty"),
        ("x" * 257, "257 characters"),
        (".", "relative"),
        ("..", "relative"),
        ("a/b", "'/'"),
        ("a\x00b", "NUL"),
        ("a\x85b", "U+0085"),
        ("a\ufffd", "UTF-8"),
        ("a\ud800", "surrogate"),
        (" a", "whitespace"),
        ("a\u3000", "whitespace"),
    ],
)
def test_the_id_rule_names_what_is_wrong(entry_id, words):
    with pytest.raises(InvalidInput) as err:
        check_entry_id(entry_id, "entries[2].id")
    assert err.value.field == "entries[2].id" and words in err.value.message


@pytest.mark.parametrize(
    "entry_id", ["a", "x" * 256, "a?b=1", "a#b", "...", "a b", "Ümlaut-ß", "%2F"]
)
def test_the_id_rule_accepts_ordinary_ids(entry_id):
    assert check_entry_id(entry_id) == entry_id


def test_metadata_and_filters_share_one_rule():
    for bad, field in (
        ({"a": float("nan")}, ".a"),
        ({"a": [1, {"b": float("inf")}]}, ".a[1].b"),
        ({"n": 2**64}, ".n"),
        ({"s": "x\x00"}, ".s"),
    ):
        with pytest.raises(InvalidInput) as err:
            check_metadata(bad, "metadata", max_bytes=10_000)
        assert err.value.field == "metadata" + field
        with pytest.raises(InvalidInput) as err:
            parse_filter(bad)
        assert err.value.field == "filter" + field
    with pytest.raises(InvalidInput) as err:
        filter_from_text('{"a": 1e309}')
    assert err.value.field == "filter.a" and "finite" in err.value.message
    nested = {"a": {"b": {}}}
    for _ in range(40):
        nested = {"a": nested}
    with pytest.raises(InvalidInput, match="deeper"):
        check_metadata(nested, "metadata", max_bytes=10_000)
    with pytest.raises(PayloadTooLarge):
        check_metadata({"a": "x" * 100}, "metadata", max_bytes=50)
    assert parse_filter({}) is None and filter_from_text("") is None
    assert filter_from_text('{"k": ["a", 1, null, true]}') == {"k": ["a", 1, None, True]}


def test_unit_rows_normalise_huge_and_tiny_rows_and_refuse_zero():
    rows = np.array([[3e300, 4e300], [3e-310, 4e-310], [-3.0, 4.0]])
    unit = unit_rows(rows, "embeddings")
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.6, 0.8], [-0.6, 0.8]], rtol=1e-6)
    with pytest.raises(InvalidInput) as err:
        unit_rows(np.array([[1.0, 0.0], [0.0, 0.0]]), "embeddings")
    assert err.value.field == "embeddings[1]" and "zeros" in err.value.message


def test_union_tags_are_left_out_of_field_paths():
    assert clean_loc(("missing", 0, 0, "int")) == ("missing", 0, 0)
    assert clean_loc(("filter", "k", "list[union[str,int]]", 2)) == ("filter", "k", 2)
    assert clean_loc(("spectra", 1, 3)) == ("spectra", 1, 3)
