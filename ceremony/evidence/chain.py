"""evidence.chain: every planned key's story in the sealed transcript — generated, wrapped, its
challenge wrapped (AES), imported with its proof — each event naming the very bytes the archive
holds. A key whose story has a gap, or points at other bytes, fails the verification by name.

Reads the plan, events and files handed to it; never trusts a file the transcript does not name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from ceremony.canonical import sha256_hex
from ceremony.events import (
    AES_CHALLENGE_WRAPPED,
    KEY_ADOPTED,
    KEY_GENERATED,
    KEY_IMPORTED,
    KEY_WRAPPED,
)

PLAN = "plan.toml"


def planned_keys(files: Mapping[str, bytes]) -> dict[str, str] | None:
    """Key name -> kty for every [[keys]] entry of the sealed plan; None without a readable plan."""
    try:
        plan = tomllib.loads(files[PLAN].decode("utf-8"))
        return {str(k["name"]): str(k["type"]) for k in plan["keys"]}
    except (KeyError, TypeError, ValueError, UnicodeDecodeError):
        return None


def story_gaps(name: str, kty: str, events: Sequence[Any], files: Mapping[str, bytes]) -> list[str]:
    """What is missing from, or wrong in, key NAME's chain of events; empty when it is whole."""
    told = [e for e in events if isinstance(e.data, dict) and e.data.get("name") == name]

    def last(*actions: str) -> dict[str, Any] | None:
        found = [e.data for e in told if e.action in actions]
        return found[-1] if found else None

    def digest(path: str) -> str | None:
        return sha256_hex(files[path]) if path in files else None

    base = f"keys/{name}"
    gaps = []
    if last(KEY_GENERATED, KEY_ADOPTED) is None:
        gaps.append("no key-generated event")
    wrapped = last(KEY_WRAPPED)
    if wrapped is None:
        gaps.append("no key-wrapped event")
    elif wrapped.get("byok_sha256") != digest(f"{base}.byok"):
        gaps.append(f"its key-wrapped event names other bytes than {base}.byok")
    if kty.startswith("oct"):
        challenged = last(AES_CHALLENGE_WRAPPED)
        if challenged is None:
            gaps.append("no aes-challenge-wrapped event")
        elif challenged.get("sha256") != digest(f"{base}.challenge.json"):
            gaps.append(
                f"its aes-challenge-wrapped event names other bytes than {base}.challenge.json"
            )
    imported = last(KEY_IMPORTED)
    if imported is None:
        gaps.append("no key-imported event")
    else:
        if imported.get("byok_sha256") != digest(f"{base}.byok"):
            gaps.append(f"its key-imported event names another package than {base}.byok")
        if imported.get("sha256") != digest(f"{base}.import.json"):
            gaps.append(f"its key-imported event names other bytes than {base}.import.json")
        if not imported.get("proof"):
            gaps.append("its key-imported event records no proof of possession")
    return gaps
