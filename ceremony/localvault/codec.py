"""localvault.codec: base64url and big-integer encodings used by the JSON Web Key wire format.

Owns strict decoding of client-supplied fields. Never decides what a field means.
"""

from __future__ import annotations

import base64
import binascii

_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, as Key Vault writes bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raise ValueError on any other character."""
    raw = text.rstrip("=").encode("ascii", errors="strict") if text.isascii() else None
    if raw is None or not set(raw) <= _ALPHABET or len(raw) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def int_to_bytes(value: int, length: int | None = None) -> bytes:
    """Big-endian unsigned bytes, minimal or padded to `length` (EC coordinates)."""
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def bytes_to_int(data: bytes) -> int:
    """Big-endian unsigned integer."""
    return int.from_bytes(data, "big")
