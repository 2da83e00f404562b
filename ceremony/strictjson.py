"""strictjson: read JSON from untrusted evidence the one way every parser agrees on, or refuse.

A duplicated key (which parsers resolve differently), NaN or Infinity (not JSON), or nesting too
deep to walk safely is refused with a ValueError, as malformed JSON is. Never evaluates anything.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # records, statements and transcript lines nest a handful of levels


def strict_loads(content: bytes | str) -> Any:
    """The JSON value in `content`; ValueError (UnicodeDecodeError for bad UTF-8) when it is
    not plain, unambiguous JSON nested at most MAX_DEPTH levels."""
    try:
        value = json.loads(content, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"it nests deeper than {MAX_DEPTH} levels") from None
    if _depth(value) > MAX_DEPTH:
        raise ValueError(f"it nests deeper than {MAX_DEPTH} levels")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    """Nesting depth, walked without recursion so that no input can exhaust the stack."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest
