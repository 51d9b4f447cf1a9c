"""The rules every request value meets, each written once: entry ids, JSON metadata and metadata
filters, query vectors, and the names errors give to fields.

Routes call the request checks after the body is parsed; the library service shapes query
vectors and search answers with :func:`unit_rows` and :func:`bounded_hits`, and the inference
layer words preprocessing errors with :func:`public_message`. Every check raises
:class:`~wavemae_service.errors.InvalidInput` (422) or
:class:`~wavemae_service.errors.PayloadTooLarge` (413) naming the field and the reason.
No FastAPI here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson
import pydantic_core

from .errors import InvalidInput, PayloadTooLarge
from .library.base import SearchHit

__all__ = [
    "MAX_ID_CHARS",
    "MAX_JSON_DEPTH",
    "bounded_hits",
    "check_entry_id",
    "check_metadata",
    "clean_loc",
    "filter_from_text",
    "metadata_view",
    "parse_filter",
    "public_message",
    "rename_rows",
    "unit_rows",
]

#: Longest entry id, in characters.
MAX_ID_CHARS = 256
#: Deepest nesting of objects and lists in metadata (deeper JSON is refused, 422).
MAX_JSON_DEPTH = 32

# -- entry ids --------------------------------------------------------------------------------


def check_entry_id(entry_id: str, field: str = "id") -> str:
    """The one rule for library entry ids, in URL paths and in bodies alike.

    An id is 1..256 characters of valid Unicode, without ``/``, control characters or the
    replacement character U+FFFD (what undecodable bytes in a URL turn into, so two different
    invalid ids would collide), without leading or trailing whitespace, and is not ``.`` or
    ``..`` (URL normalisation removes those path segments, so they could be written but never
    read back). Any other character, ``?`` and ``#`` included, is fine: clients percent-encode.

    Returns:
        ``entry_id`` unchanged.

    Raises:
        InvalidInput: naming the rule the id breaks.
    """

    def refuse(reason: str) -> InvalidInput:
        return InvalidInput(f"{field}={_shown(entry_id)} {reason}", field=field)

    if not entry_id:
        raise refuse("is empty; ids have 1 to 256 characters")
    if len(entry_id) > MAX_ID_CHARS:
        raise refuse(f"has {len(entry_id)} characters; at most {MAX_ID_CHARS}")
    if entry_id in (".", ".."):
        raise refuse("is a relative path segment; URLs cannot address it")
    if entry_id != entry_id.strip():
        raise refuse("starts or ends with whitespace")
    for char in entry_id:
        if char == "/":
            raise refuse("contains '/'; ids are single URL path segments")
        if char == "\ufffd":
            raise refuse("is not valid UTF-8 (it holds U+FFFD, the replacement character)")
        category = unicodedata.category(char)
        if category == "Cc":
            name = " (NUL)" if char == "\x00" else ""
            raise refuse(f"contains the control character U+{ord(char):04X}{name}")
        if category == "Cs":
            raise refuse("is not valid Unicode (it holds a lone surrogate)")
    return entry_id


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


# -- JSON metadata and filters ------------------------------------------------------------------


def _check_text(text: str, where: str, what: str = "") -> None:
    """``what`` names the text when it is not ``where`` itself (an object's key)."""
    subject = f"{where}{what}"
    if "\x00" in text:
        raise InvalidInput(f"{subject} must not contain NUL characters", field=where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{subject} is not valid Unicode (it holds a lone surrogate)", field=where
        ) from None


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what JSON stores cannot hold faithfully: NaN/Infinity (stored as null, so filters
    would then disagree), integers beyond 64 bits, NUL characters, lone surrogates, and nesting
    deeper than :data:`MAX_JSON_DEPTH`."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"{where} nests deeper than {MAX_JSON_DEPTH} levels", field=where)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(
                f"{where} is {value}: numbers must be finite (NaN, Infinity and numbers too "
                "large for a double, like 1e309, are refused)",
                field=where,
            )
    elif isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise InvalidInput(f"{where}: integers must fit in 64 bits", field=where)
    elif isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where, f": the key {_shown(key)}")
            _check_json(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", depth + 1)
    else:  # parsed JSON holds nothing else
        raise InvalidInput(f"{where} is not a JSON value", field=where)


def check_metadata(metadata: dict[str, Any], field: str, *, max_bytes: int) -> dict[str, Any]:
    """Metadata of one entry, checked before it is stored.

    Args:
        metadata: the parsed JSON object.
        field: where it came from, e.g. ``"metadata"`` or ``"entries[3].metadata"``.
        max_bytes: largest accepted size of the object as compact JSON (``max_metadata_bytes``).

    Returns:
        ``metadata`` unchanged.

    Raises:
        InvalidInput: a non-finite number, an integer beyond 64 bits, NUL, a lone surrogate.
        PayloadTooLarge: larger than ``max_bytes`` as JSON.
    """
    _check_json(metadata, field)
    size = len(orjson.dumps(metadata))
    if size > max_bytes:
        raise PayloadTooLarge(
            f"{field} is {size} bytes as JSON; at most {max_bytes} per entry "
            "(keep large documents elsewhere and store a reference)",
            field=field,
        )
    return metadata


def parse_filter(value: Any, field: str = "filter") -> dict[str, Any] | None:
    """A metadata filter (``POST /similar`` body and ``GET /library?filter=``), checked by the
    same rules as stored metadata.

    A filter is a JSON object; each value is a scalar (string, number, boolean, null), matched
    by equality, or a list of scalars, matched when the entry's value equals any of them.

    Returns:
        The filter, or None for no filter (None or ``{}``).

    Raises:
        InvalidInput: not an object, a nested object or list, or a value stored metadata could
            not hold (see :func:`check_metadata`).
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    _check_json(value, field)
    for key, wanted in value.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if any(isinstance(option, dict | list) for option in options):
            where = f"{field}.{key}"
            raise InvalidInput(
                f"{where} must be a string, number, boolean or null, or a list of them",
                field=where,
            )
    return value or None


def filter_from_text(text: str | None, field: str = "filter") -> dict[str, Any] | None:
    """A filter sent as JSON text (a query parameter), parsed like a JSON body and checked by
    :func:`parse_filter`."""
    if not text:
        return None
    try:
        value = pydantic_core.from_json(text)
    except ValueError:
        raise InvalidInput(f"{field} is not valid JSON", field=field) from None
    return parse_filter(value, field)


def metadata_view(
    metadata: dict[str, Any], include: bool, fields: Iterable[str] | None
) -> dict[str, Any] | None:
    """What a search answer shows of an entry's metadata: nothing (``include=False``), the
    ``fields`` asked for (absent ones left out), or all of it."""
    if not include:
        return None
    if fields is None:
        return metadata
    return {key: metadata[key] for key in fields if key in metadata}


def bounded_hits(
    hits: list[list[SearchHit]],
    include: bool,
    fields: Sequence[str] | None,
    *,
    max_bytes: int,
) -> list[list[dict[str, Any]]]:
    """Search hits as JSON-ready ``{"id", "score", "gap", "metadata"?}`` dicts (metadata as
    chosen by :func:`metadata_view`), refusing once their JSON would pass ``max_bytes``: stored
    metadata is bounded per entry, but queries x k hits of it need not be.

    Raises:
        InvalidInput: the answer would exceed ``max_bytes`` (the message says how to ask for less).
    """
    left = max_bytes
    results = []
    for row in hits:
        shaped = []
        for hit in row:
            answer: dict[str, Any] = {"id": hit.id, "score": hit.score, "gap": hit.gap}
            left -= len(hit.id) + 60  # id, score, gap and punctuation, about
            metadata = metadata_view(hit.metadata, include, fields)
            if metadata is not None:
                encoded = orjson.dumps(metadata)
                left -= len(encoded)
                answer["metadata"] = orjson.Fragment(encoded)  # serialised once
            if left < 0:
                raise InvalidInput(
                    f"the answer would exceed {max_bytes} bytes (max_search_response_bytes); "
                    "send fewer queries or a smaller k, select metadata 'fields', or set "
                    "include_metadata=false",
                    field="k",
                )
            shaped.append(answer)
        results.append(shaped)
    return results


# -- query vectors -------------------------------------------------------------------------------


def unit_rows(queries: np.ndarray, field: str, *, zero_reason: str = "is all zeros") -> np.ndarray:
    """``(Q, d)`` query vectors -> ``(Q, d)`` float32 rows of unit L2 norm, for cosine search.

    Each row is divided by its largest magnitude before its norm is taken, so rows of 1e300
    (whose squares overflow) or 1e-300 (whose squares underflow) normalise exactly.

    Raises:
        InvalidInput: a row that is all zeros (cosine similarity with it is undefined), or
            that holds a non-finite value.
    """
    rows = np.asarray(queries, dtype=np.float64)
    if not np.isfinite(rows).all():
        i = int(np.argmin(np.isfinite(rows).all(axis=1)))
        raise InvalidInput(f"{field}[{i}] holds a non-finite value", field=f"{field}[{i}]")
    scale = np.abs(rows).max(axis=1, keepdims=True)
    if (scale == 0).any():
        i = int(np.argmax(scale[:, 0] == 0))
        raise InvalidInput(
            f"{field}[{i}] {zero_reason}: its cosine similarity to any entry is undefined",
            field=f"{field}[{i}]",
        )
    scaled = rows / scale
    return (scaled / np.linalg.norm(scaled, axis=1, keepdims=True)).astype(np.float32)


# -- error wording --------------------------------------------------------------------------------

# Internal argument names that reach messages from wavemae.preprocessing -> request names.
_PUBLIC_NAMES = (("src_wavelengths", "wavelengths"), ("dst_wavelengths", "the model's grid"))

# Location parts pydantic adds for the member of a union (``int``, ``list[float]``, ...): they
# name a type, not a field, and would read as ``missing[0][0].int``.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|bytes)$|\[|^(constrained|function|lax|strict)-")


def public_message(text: str) -> str:
    """A library message with internal argument names replaced by the request's names."""
    for internal, public in _PUBLIC_NAMES:
        text = text.replace(internal, public)
    return text


def rename_rows(exc: InvalidInput, prefix: str, names: list[str]) -> InvalidInput:
    """``exc`` about ``{prefix}[i]`` (a row of a stacked batch) renamed to ``names[i]``, the
    field the caller sent that row as (e.g. ``spectra[1]`` -> ``entries[4].spectrum``)."""
    match = re.match(rf"{re.escape(prefix)}\[(\d+)\]", exc.field or "")
    if match is None or int(match[1]) >= len(names):
        return exc
    old, new = match[0], names[int(match[1])]
    return InvalidInput(exc.message.replace(old, new), field=(exc.field or "").replace(old, new, 1))


def clean_loc(loc: Iterable[Any]) -> tuple[Any, ...]:
    """A pydantic error location without union member tags (the first part always stays)."""
    parts = tuple(loc)
    return parts[:1] + tuple(
        p for p in parts[1:] if not (isinstance(p, str) and _UNION_TAG.search(p))
    )
