"""evidence.predicate: the signed predicate as the verifier reads it, every field type-checked.

A predicate is read only after its signatures are known to be well formed, yet its signers may be
hostile: a wrong type or shape anywhere becomes one VerificationError naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ceremony.errors import CeremonyError, VerificationError
from ceremony.people import Person, Quorum

SEALED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class SealedPredicate:
    """The fields the verifier relies on; the report reads the rest from the same dict."""

    sealed_at: str
    mtime: int
    rehearsal: bool
    people: tuple[Person, ...]
    quorum: Quorum
    transcript_head: str | None
    exceptions: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SealedPredicate:
        """Read and check `data`; VerificationError names the first field that is wrong."""
        field = _Fields(data)
        sealed_at = field.get("sealed_at", str, "a time like 2026-11-28T12:00:00Z")
        try:
            moment = datetime.strptime(sealed_at, SEALED_AT_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise field.wrong("sealed_at", "a time like 2026-11-28T12:00:00Z") from None
        transcript = field.get("transcript", dict, "an object with the head and event count")
        head = transcript.get("head")
        if head is not None and not isinstance(head, str):
            raise field.wrong("transcript.head", "a hex digest")
        exceptions = field.get("exceptions", list, "a list of sentences")
        if not all(isinstance(e, str) for e in exceptions):
            raise field.wrong("exceptions", "a list of sentences")
        people_list = field.get("people", list, "a list of people")
        rule = field.get("quorum", dict, "an object of role = count")
        try:
            people = tuple(_person(p) for p in people_list)
            quorum = Quorum.from_dict(rule)
        except CeremonyError as exc:
            raise VerificationError(
                f"the predicate's people or quorum: {exc.message}", ""
            ) from None
        return cls(
            sealed_at=sealed_at,
            mtime=int(moment.timestamp()),
            rehearsal=field.get("rehearsal", bool, "true or false"),
            people=people,
            quorum=quorum,
            transcript_head=head,
            exceptions=tuple(exceptions),
        )


class _Fields:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def get(self, key: str, kind: type, expected: str) -> Any:
        value = self.data.get(key)
        if not isinstance(value, kind):
            raise self.wrong(key, expected)
        return value

    def wrong(self, key: str, expected: str) -> VerificationError:
        return VerificationError(f"the predicate's {key} is not {expected}.", "")


def _person(entry: Any) -> Person:
    if not isinstance(entry, dict):
        raise VerificationError("a person entry is not an object", "")
    values = [entry.get(k) for k in ("name", "role", "public_key_pem")]
    if not all(isinstance(v, str) for v in values) or not isinstance(entry.get("signs"), bool):
        raise VerificationError("a person entry lacks a name, role, key or signs flag", "")
    return Person(*values, "signs" if entry["signs"] else "")
