"""localvault.params: typed reading of client-supplied JSON bodies and path segments.

Owns the 400 answers for malformed input: wrong JSON, wrong types, bad names. Never acts on a
request; it only says whether the request is well formed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ceremony.localvault.codec import b64url_decode
from ceremony.localvault.errors import bad_parameter

NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
VERSION_PATTERN = re.compile(r"^[0-9a-zA-Z]{1,64}$")


def check_name(name: str) -> str:
    """A key name as Key Vault allows it: 1-127 of 0-9, a-z, A-Z and '-'."""
    if not NAME_PATTERN.match(name):
        raise bad_parameter(
            f"The key name {name[:140]!r} is invalid: "
            "use 1-127 characters from 0-9, a-z, A-Z and '-'."
        )
    return name


def check_version(version: str) -> str:
    """A version segment: empty (latest) or alphanumeric."""
    if version and not VERSION_PATTERN.match(version):
        raise bad_parameter(f"The key version {version[:80]!r} is invalid.")
    return version


def parse_json(raw: bytes) -> Body:
    """The request body as a JSON object (an empty body counts as {})."""
    if not raw.strip():
        return Body({}, "")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_parameter("The request body is not valid JSON.") from exc
    if not isinstance(document, dict):
        raise bad_parameter("The request body must be a JSON object.")
    return Body(document, "")


class Body:
    """A JSON object with typed getters whose errors name the offending field path."""

    def __init__(self, data: dict[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _typed(self, key: str, kind: type | tuple[type, ...], label: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None:
            if required:
                raise bad_parameter(f"The field '{self._name(key)}' is required.")
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad_parameter(f"The field '{self._name(key)}' must be {label}.")
        return value

    def str(self, key: str, *, required: bool = False) -> str | None:
        return self._typed(key, str, "a string", required)

    def int(self, key: str) -> int | None:
        return self._typed(key, int, "an integer", False)

    def bool(self, key: str) -> bool | None:
        return self._typed(key, bool, "true or false", False)

    def obj(self, key: str, *, required: bool = False) -> Body | None:
        value = self._typed(key, dict, "an object", required)
        return None if value is None else Body(value, self._name(key))

    def str_list(self, key: str) -> list[str] | None:
        value = self._typed(key, list, "a list of strings", False)
        if value is not None and not all(isinstance(item, str) for item in value):
            raise bad_parameter(f"The field '{self._name(key)}' must be a list of strings.")
        return value

    def tags(self, key: str = "tags") -> dict[str, str] | None:
        value = self._typed(key, dict, "an object of strings", False)
        if value is not None and not all(isinstance(v, str) for v in value.values()):
            raise bad_parameter(f"The field '{self._name(key)}' must map names to strings.")
        return value

    def b64(self, key: str, *, required: bool = False) -> bytes | None:
        value = self.str(key, required=required)
        if value is None:
            return None
        try:
            return b64url_decode(value)
        except ValueError as exc:
            raise bad_parameter(f"The field '{self._name(key)}' must be base64url.") from exc
