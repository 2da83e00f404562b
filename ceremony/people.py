"""people: who takes part in a ceremony, their public signing keys, and the quorum rule.

Holds public data only (names, roles, public keys, signer references); never a PIN or private key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from securesystemslib.signer import SSlibKey

from ceremony.errors import PlanError, UsageError
from ceremony.fingerprint import Fingerprint, fingerprint_public_key, public_key_der

ROLES = ("administrator", "custodian", "witness", "auditor")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._\-]{0,63}$")


@dataclass(frozen=True)
class Person:
    """A participant. `signer` says where their private key lives ("" when they do not sign)."""

    name: str
    role: str
    public_key_pem: str
    signer: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PlanError(
                f"Person name {self.name!r} is not usable.",
                "Use 1-64 letters, digits, spaces, dots, dashes or underscores.",
            )
        if self.role not in ROLES:
            raise PlanError(
                f"{self.name}: role {self.role!r} is not one of {', '.join(ROLES)}.",
                "Give each person one of those roles.",
            )
        try:
            public_key_der(self.public_key_pem)
            _ = self.key
        except Exception as exc:
            raise PlanError(
                f"{self.name}: the public signing key is not an RSA, EC (P-256/384/521) or "
                "Ed25519 public key in PEM form.",
                "Export the public key of their signing key as PEM (SubjectPublicKeyInfo).",
            ) from exc

    @cached_property
    def key(self) -> SSlibKey:
        """The public key as securesystemslib sees it. Its key id, which names DSSE signatures,
        is the key's one fingerprint: the SHA-256 of its DER SubjectPublicKeyInfo."""
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        der = public_key_der(self.public_key_pem)
        return SSlibKey.from_crypto(load_der_public_key(der), keyid=Fingerprint.of(der).hex)

    @property
    def key_id(self) -> str:
        """The DSSE key id: the same SHA-256 of the DER SPKI that witnesses compare."""
        return self.key.keyid

    @property
    def fingerprint(self) -> Fingerprint:
        """SHA-256 of the DER public key, for reading aloud and printing."""
        return fingerprint_public_key(self.public_key_pem)

    @property
    def pin_env_var(self) -> str:
        """Environment variable that may hold this person's token PIN or key passphrase."""
        return "CEREMONY_PIN_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())

    @property
    def file_stem(self) -> str:
        """Safe file name stem for this person's public key in the evidence."""
        return re.sub(r"[^a-z0-9._-]", "-", self.name.lower())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the plan's shape); the key id is derived, not stored."""
        return {
            "name": self.name,
            "role": self.role,
            "public_key_pem": self.public_key_pem,
            "signer": self.signer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Person:
        """Inverse of to_dict; unknown fields are errors."""
        unknown = set(data) - {"name", "role", "public_key_pem", "signer", "key_id"}
        if unknown:
            raise PlanError(
                f"Person entry has unknown fields: {', '.join(sorted(unknown))}.",
                "Remove them; a person has name, role, public_key_pem and signer.",
            )
        person = cls(
            name=data.get("name", ""),
            role=data.get("role", ""),
            public_key_pem=data.get("public_key_pem", ""),
            signer=data.get("signer", ""),
        )
        if "key_id" in data and data["key_id"] != person.key_id:
            raise PlanError(
                f"{person.name}: key_id {data['key_id']} does not belong to the public key given.",
                "Correct the key id or the public key; they must describe the same key.",
            )
        return person


@dataclass(frozen=True)
class QuorumResult:
    """How many signatures each role has against the rule."""

    met: bool
    counts: dict[str, int]
    missing: dict[str, int]

    def describe(self) -> str:
        if self.met:
            return "quorum met: " + _describe_counts(self.counts)
        return "quorum not met: missing " + _describe_counts(self.missing)


@dataclass(frozen=True)
class Quorum:
    """The rule, for example {"custodian": 2, "witness": 1}: that many distinct people per role."""

    requirements: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.requirements:
            raise PlanError("The quorum rule is empty.", "Require at least one signature.")
        for role, count in self.requirements.items():
            if role not in ROLES:
                raise PlanError(
                    f"Quorum role {role!r} is not one of {', '.join(ROLES)}.",
                    "Name roles as the people list does.",
                )
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise PlanError(
                    f"Quorum count for {role} must be a whole number of at least 1.",
                    "Write for example custodian = 2.",
                )

    def check_possible(self, people: Iterable[Person]) -> None:
        """Refuse a plan whose signers can never meet the rule."""
        available = _count_roles(p for p in people if p.signer)
        short = {r: n - available.get(r, 0) for r, n in self.requirements.items()}
        short = {r: n for r, n in short.items() if n > 0}
        if short:
            raise PlanError(
                f"The quorum cannot be met: the plan lacks signers ({_describe_counts(short)}).",
                "Add people with those roles and signing keys, or lower the quorum.",
            )

    def evaluate(self, people: Iterable[Person], signed_key_ids: Iterable[str]) -> QuorumResult:
        """Count distinct people per role whose key id signed."""
        signed = set(signed_key_ids)
        counts = _count_roles(p for p in people if p.key_id in signed)
        missing = {
            r: n - counts.get(r, 0) for r, n in self.requirements.items() if counts.get(r, 0) < n
        }
        return QuorumResult(met=not missing, counts=counts, missing=missing)

    def describe(self) -> str:
        return _describe_counts(self.requirements)

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self.requirements.items()))

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Quorum:
        return cls(dict(data))


def _count_roles(people: Iterable[Person]) -> dict[str, int]:
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for person in people:
        if person.key_id not in seen:
            seen.add(person.key_id)
            counts[person.role] = counts.get(person.role, 0) + 1
    return counts


def _describe_counts(counts: dict[str, int]) -> str:
    parts = [f"{n} {role}{'s' if n != 1 else ''}" for role, n in sorted(counts.items()) if n]
    return " and ".join(parts) if parts else "none"


def check_people(people: Iterable[Person]) -> None:
    """Refuse duplicate names or one key shared by two people (it would count twice)."""
    stems: set[str] = set()
    keys: dict[str, str] = {}
    for person in people:
        if person.file_stem in stems:
            raise PlanError(f"Two people are named {person.name!r}.", "Give each a unique name.")
        stems.add(person.file_stem)
        if person.key_id in keys:
            raise PlanError(
                f"{person.name} and {keys[person.key_id]} have the same signing key.",
                "Each person needs their own key, or the quorum means nothing.",
            )
        keys[person.key_id] = person.name


def parse_people_file(raw: bytes, source: str) -> tuple[list[Person], Quorum]:
    """The people file `ceremony seal --people` reads: {"people": [...], "quorum": {...}}."""
    remedy = 'Write {"people": [{...}, ...], "quorum": {"custodian": 1}} as the help shows.'
    try:
        spec = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"{source} is not a people file: it is not JSON.", remedy) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("people"), list):
        raise UsageError(f"{source} is not a people file: it has no list of people.", remedy)
    if not isinstance(spec.get("quorum"), dict):
        raise UsageError(f"{source} is not a people file: it has no quorum object.", remedy)
    if not all(isinstance(entry, dict) for entry in spec["people"]):
        raise UsageError(f"{source} is not a people file: a person is not a JSON object.", remedy)
    return [Person.from_dict(p) for p in spec["people"]], Quorum.from_dict(spec["quorum"])
