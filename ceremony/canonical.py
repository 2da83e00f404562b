"""canonical: the one JSON byte form that is hashed and signed (sorted keys, no spaces, UTF-8).

Owns serialisation for digests only; never accepts NaN, bytes or objects JSON cannot carry exactly.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ceremony.errors import UsageError


def canonical_json(value: Any) -> bytes:
    """Canonical UTF-8 JSON bytes of `value`: equal data always gives equal bytes."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"The data cannot be recorded as JSON: {exc}.",
            "Record only strings, numbers, booleans, lists and objects with string keys.",
        ) from exc
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()
