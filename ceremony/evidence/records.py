"""evidence.records: the JSON records phases leave in a workspace, one schema for writer and reader.

kek.json (KekRecord), keys/<name>.json (KeyRecord), keys/<name>.challenge.json (ChallengeRecord),
keys/<name>.import.json (ImportRecord) and preflight.json (PreflightRecord). Public facts only:
never a PIN, private key or wrapped secret.
Every record is written by `to_json()` and read by `from_json()`, which names a missing, unknown
or mistyped field. File layout: see WORKSPACE_FILES.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cache
from types import UnionType
from typing import Any, ClassVar, Protocol, TypeVar, Union, get_args, get_origin, get_type_hints

from ceremony.errors import UsageError
from ceremony.strictjson import strict_loads

SCHEMA_VERSION = 1
AES_KEY_WRAP = "CKM_AES_KEY_WRAP"  # RFC 3394, the vault's name for the AES challenge wrap
CHALLENGE_BYTES = 32  # an AES challenge: HSM-random, a multiple of 8 as RFC 3394 needs

# Where the phases put things (paths relative to the workspace).
WORKSPACE_FILES = {
    "preflight": "preflight.json",
    "kek_pem": "kek.pem",
    "kek": "kek.json",
    "transcript": "transcript.jsonl",
    "key_public": "keys/{name}.pub.pem",
    "key": "keys/{name}.json",
    "byok": "keys/{name}.byok",
    "challenge": "keys/{name}.challenge.json",
    "import": "keys/{name}.import.json",
    "notebooks": "notebooks/",
    "evidence": "evidence/",
    "archive": "archive.tar",
}

R = TypeVar("R", bound="_Record")


class _Record:
    """Shared JSON handling: strict reading, stable writing."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}  # type: ignore[call-overload]

    def to_json(self) -> bytes:
        """The bytes a writer puts in the file (sorted keys, indented, final newline)."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls: type[R], data: Any, source: str = "") -> R:
        where = source or cls.kind
        if not isinstance(data, dict):
            raise _bad(where, "is not a JSON object")
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise _bad(where, f"has schema_version {version!r}; this tool reads {SCHEMA_VERSION}")
        rules = _rules(cls)
        unknown = sorted(set(data) - {rule.name for rule in rules})
        if unknown:
            raise _bad(where, f"has unknown field(s) {', '.join(unknown)}")
        for rule in rules:
            if rule.name not in data:
                if rule.required:
                    raise _bad(where, f"lacks the field {rule.name}")
            elif not rule.accepts(data[rule.name]):
                raise _bad(where, f"field {rule.name} has the wrong type")
        return cls(**data)

    @classmethod
    def from_json(cls: type[R], content: bytes, source: str = "") -> R:
        try:
            data = strict_loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad(source or cls.kind, "is not JSON") from exc
        return cls.from_dict(data, source)


@dataclass(frozen=True)
class KekRecord(_Record):
    """kek.json: the key exchange key the target keys are wrapped for (public part in kek.pem)."""

    kind: ClassVar[str] = "kek.json"
    kid: str  # full versioned key id, e.g. https://v.vault.azure.net/keys/kek/0123abcd...
    kty: str  # "RSA-HSM"
    size: int  # modulus bits: 2048, 3072 or 4096
    key_ops: list[str]  # exactly ["import"]
    public_key_sha256: str  # hex SHA-256 of the DER SubjectPublicKeyInfo in kek.pem
    source: str  # "vault" (fetched) or "file" (a PEM carried in)
    out_of_band_sha256: str | None = None  # the fingerprint confirmed by another channel


@dataclass(frozen=True)
class KeyRecord(_Record):
    """keys/<name>.json: a target key generated in the HSM (public part in keys/<name>.pub.pem)."""

    kind: ClassVar[str] = "keys/<name>.json"
    name: str  # the key's name in the vault and in file names
    kty: str  # "RSA-HSM", "EC-HSM" or "oct-HSM"
    size: int | None  # RSA modulus bits or AES key bits; None for EC
    curve: str | None  # "P-256", "P-384", "P-521", "P-256K"; None otherwise
    label: str  # PKCS#11 CKA_LABEL
    id_hex: str  # PKCS#11 CKA_ID as hex
    attributes: dict[str, bool]  # security attributes read back, e.g. {"CKA_EXTRACTABLE": true}
    public_key_sha256: str | None  # SHA-256 of the DER public key; None for AES
    hsm: dict[str, Any] = field(default_factory=dict)  # token and library description


class ChallengeWrapper(Protocol):
    """The HSM side of an AES challenge: ceremony.hsm.HsmSession (named here, never imported)."""

    def random_bytes(self, count: int) -> bytes: ...

    def wrap_challenge(self, label: str, challenge: bytes) -> bytes: ...


@dataclass(frozen=True)
class ChallengeRecord(_Record):
    """keys/<name>.challenge.json: a random challenge the HSM wrapped under an AES target key.

    Made offline in phase 03; phase 04 has the vault unwrap it. The challenge itself is never
    written here, only its digest, so the online side cannot answer without the vault's key.
    """

    kind: ClassVar[str] = "keys/<name>.challenge.json"
    name: str  # the target key's name
    algorithm: str  # as the vault names it: "CKM_AES_KEY_WRAP" (RFC 3394)
    wrapped: str  # hex of the HSM's wrap of the challenge under the target key
    challenge_sha256: str  # hex SHA-256 of the challenge

    @classmethod
    def of(cls, name: str, challenge: bytes, wrapped: bytes) -> ChallengeRecord:
        """The record of `challenge` wrapped by the HSM as `wrapped` (RFC 3394)."""
        digest = hashlib.sha256(challenge).hexdigest()
        return cls(name, AES_KEY_WRAP, wrapped.hex(), digest)

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> ChallengeRecord:  # type: ignore[override]
        """As every record, and the hex must be hex: a reader asks the vault only after import."""
        record = super().from_dict(data, source)
        try:
            wrapped, digest = bytes.fromhex(record.wrapped), bytes.fromhex(record.challenge_sha256)
        except ValueError:
            raise _bad(
                source or cls.kind, "has a wrapped or challenge_sha256 that is not hex"
            ) from None
        if len(wrapped) < 24 or len(wrapped) % 8 or len(digest) != 32:
            raise _bad(source or cls.kind, "has a wrapped or challenge_sha256 of the wrong length")
        return record

    @classmethod
    def drawn_by(cls, hsm: ChallengeWrapper, name: str) -> ChallengeRecord:
        """The HSM draws a random challenge and AES key `name` (its label) wraps it, in one session.

        Phase 03 and `ceremony byok` both make the record here; the challenge is then forgotten.
        """
        challenge = hsm.random_bytes(CHALLENGE_BYTES)
        return cls.of(name, challenge, hsm.wrap_challenge(name, challenge))


@dataclass(frozen=True)
class ImportRecord(_Record):
    """keys/<name>.import.json: the key as the vault holds it after import, and the proof."""

    kind: ClassVar[str] = "keys/<name>.import.json"
    name: str
    kid: str  # versioned id of the imported key in the vault
    kty: str  # as the vault reports it, e.g. "RSA-HSM"
    byok_sha256: str  # SHA-256 of the keys/<name>.byok file that was imported
    public_key_jwk: dict[str, Any] | None  # vault's public JWK (n, e or crv, x, y); None for AES
    proof: dict[str, Any]  # see PROOF_SHAPES
    imported_at: str  # UTC time, ISO 8601
    attributes: dict[str, Any] = field(default_factory=dict)  # enabled, exportable, key_ops, tags


# The proof of possession inside ImportRecord.proof:
PROOF_SHAPES = {
    "sign": {
        "method": "sign",
        "algorithm": "JWS alg the vault signed with: PS256, RS256, ES256, ES384, ES512, ES256K",
        "challenge": "hex of the random challenge",
        "signature": "base64url signature returned by the vault over SHA-2(challenge)",
    },
    "decrypt": {
        "method": "decrypt",
        "algorithm": "RSA-OAEP-256",
        "challenge": "hex of the challenge",
        "response": "hex of what the vault decrypted: SHA-256(challenge), sealed locally with the "
        "HSM public key",
    },
    "none": {"method": "none", "reason": "why no round trip was possible (an exception)"},
    "unwrap": {
        "method": "unwrap",
        "algorithm": "CKM_AES_KEY_WRAP (RFC 3394)",
        "wrapped": "hex of the challenge the HSM wrapped in phase 03 (keys/<name>.challenge.json)",
        "challenge_sha256": "hex SHA-256 of that challenge, from the phase-03 record",
        "unwrapped": "hex of what the vault's key unwrapped; its SHA-256 must be challenge_sha256",
        "checked_by": "who compared",
    },
}


@dataclass(frozen=True)
class PreflightRecord(_Record):
    """preflight.json (and preflight-<host>-<time>.json for each further side): the software,
    host, HSM and self-test as found before anything was done."""

    kind: ClassVar[str] = "preflight.json"
    tools: dict[str, str]  # name -> version (python, ceremony, cryptography, softhsm2 ...)
    host: dict[str, Any]  # hostname, platform, clock
    hsm: dict[str, Any]  # HsmInfo.to_dict()
    self_test: dict[str, Any] | None  # WrapSelfTest.to_dict()
    rehearsal: bool
    warnings: list[str] = field(default_factory=list)  # e.g. require_conformant() warnings
    software: dict[str, Any] = field(default_factory=dict)  # ceremony.software.Software.to_dict()


@dataclass(frozen=True)
class _FieldRule:
    """What a field accepts: JSON types (bool never counts as int) and whether it is required."""

    name: str
    types: tuple[type, ...]
    required: bool

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return self.types == (object,)
        return isinstance(value, self.types)


@cache
def _rules(cls: type) -> tuple[_FieldRule, ...]:
    """Field rules, derived once per record class from its type hints."""
    hints = get_type_hints(cls)
    rules = []
    for spec in fields(cls):
        hint = hints[spec.name]
        options = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
        types = tuple(object if o is Any else get_origin(o) or o for o in options)
        required = spec.default is MISSING and spec.default_factory is MISSING
        rules.append(_FieldRule(spec.name, types, required))
    return tuple(rules)


def _bad(where: str, why: str) -> UsageError:
    return UsageError(f"{where} {why}.", "Rewrite it with the phase that owns it.")
