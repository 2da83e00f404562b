"""plan: the ceremony plan file (TOML) — its schema, strict validation and typed sections.

Owns reading and checking the one reviewed document that says what a ceremony does. It never holds a
secret (a field that looks like a PIN or password is refused) and never touches an HSM or vault.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ceremony.errors import CeremonyError, PlanError
from ceremony.fingerprint import Fingerprint
from ceremony.keyspec import KeySpec

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
PERSON_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
ROLES = ("administrator", "custodian", "witness", "auditor")
FLAVOUR_HOSTS = {"keyvault": ".vault.azure.net", "managed-hsm": ".managedhsm.azure.net"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
KEY_OPS = {
    "RSA": ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"),
    "EC": ("sign", "verify"),
    "AES": ("encrypt", "decrypt", "wrapKey", "unwrapKey"),
}
SECRET_WORDS = frozenset(
    {"pin", "pins", "password", "passwd", "pwd", "passphrase", "secret", "apikey", "sopin"}
)
SECRET_REMEDY = (
    "Secrets never go in the plan: remove the field; PINs come from the CEREMONY_PIN (or "
    "CEREMONY_PIN_<NAME>) environment variable or a hidden prompt at the ceremony."
)


class _Table:
    """One TOML table being read: pops fields by name so that anything left over is unknown."""

    def __init__(self, where: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise PlanError(f"Plan field {where} must be a table.", f"Write it as [{where}].")
        self.where = where
        self.data = dict(data)

    def _fail(self, name: str, problem: str, remedy: str) -> PlanError:
        return PlanError(f"Plan field {self.where}.{name} {problem}.", remedy)

    def take(self, name: str, kind: type | tuple[type, ...], *, default: Any = ..., hint: str = ""):
        """Remove and return field `name`, checking its TOML type; `default` makes it optional."""
        if name not in self.data:
            if default is ...:
                raise self._fail(name, "is missing", hint or f"Add {name} to [{self.where}].")
            return default
        value = self.data.pop(name)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        bad_bool = isinstance(value, bool) and bool not in kinds
        if bad_bool or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self._fail(
                name, f"must be {names}, not {type(value).__name__}", hint or "Fix its type."
            )
        return value

    def text(self, name: str, pattern: re.Pattern[str] | None = None, **kw: Any) -> Any:
        value = self.take(name, str, **kw)
        if value is None:
            return None
        if not value.strip():
            raise self._fail(name, "is empty", kw.get("hint") or "Give it a value.")
        if pattern and not pattern.match(value):
            raise self._fail(
                name, f"is {value!r}, which does not match {pattern.pattern}", "Rename it."
            )
        return value

    def done(self) -> None:
        """Refuse whatever field nobody asked for: a typo must not be silently ignored."""
        if self.data:
            name = sorted(self.data)[0]
            raise self._fail(name, "is not a known field", f"Remove or correct {name!r}.")


@dataclass(frozen=True)
class CeremonySection:
    """Who and why: the identity every workspace file and transcript line is bound to."""

    id: str
    purpose: str

    @classmethod
    def read(cls, data: Any) -> CeremonySection:
        t = _Table("ceremony", data)
        section = cls(id=t.text("id", NAME_RE), purpose=t.text("purpose"))
        t.done()
        return section


@dataclass(frozen=True)
class VaultSection:
    """Where the keys go: the vault (or Managed HSM) URL and which flavour it is."""

    url: str
    flavour: str
    local_state: Path | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def is_local(self) -> bool:
        """The rehearsal vault on this machine, not Azure."""
        return self.host in LOCAL_HOSTS

    @classmethod
    def read(cls, data: Any, base: Path) -> VaultSection:
        t = _Table("vault", data)
        url = t.text("url").rstrip("/")
        flavour = t.text("flavour")
        local_state = t.text("local_state", default=None)
        t.done()
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.path or parts.query:
            raise PlanError(
                f"Plan field vault.url is {url!r}, which is not a vault URL.",
                "Write it as https://<name>.vault.azure.net or https://<name>.managedhsm.azure.net.",
            )
        if flavour not in FLAVOUR_HOSTS:
            raise PlanError(
                f"Plan field vault.flavour is {flavour!r}.", "Use 'keyvault' or 'managed-hsm'."
            )
        host = parts.hostname
        if host not in LOCAL_HOSTS:
            other = next(f for f in FLAVOUR_HOSTS if f != flavour)
            if host.endswith(FLAVOUR_HOSTS[other]):
                raise PlanError(
                    f"Plan field vault.flavour is {flavour!r} but {host} is a {other} host.",
                    f"Set vault.flavour = {other!r} or correct vault.url.",
                )
        elif local_state is None:
            raise PlanError(
                f"Plan field vault.url points to this machine ({host}) but local_state is missing.",
                "Give local_state, the local vault's state directory (rehearsals only).",
            )
        if local_state is not None and host not in LOCAL_HOSTS:
            raise PlanError(
                "Plan field vault.local_state is set for a vault that is not on this machine.",
                "Remove local_state: it names the rehearsal vault's directory only.",
            )
        state = (base / local_state).resolve() if local_state else None
        return cls(url=url, flavour=flavour, local_state=state)


@dataclass(frozen=True)
class KekSection:
    """The key exchange key: its name, optional version and the fingerprint agreed out of band."""

    name: str
    fingerprint: str
    version: str | None = None
    # The KEK's public key as `az keyvault key download` wrote it, when it is carried in rather
    # than fetched: it is read from here (never from the workspace, which the medium exposes).
    file: Path | None = None

    @classmethod
    def read(cls, data: Any, base: Path) -> KekSection:
        t = _Table("kek", data)
        name = t.text("name", NAME_RE)
        version = t.text("version", re.compile(r"^[0-9a-zA-Z]{1,64}$"), default=None)
        file = t.text("file", default=None)
        if file is not None and version is None:
            raise PlanError(
                "Plan field kek.file is set but kek.version is not.",
                "Add kek.version: a .byok package must name the exact KEK version.",
            )
        raw = t.text(
            "fingerprint",
            hint="Add the KEK's SHA-256 fingerprint, obtained from the vault owner out of band.",
        )
        t.done()
        try:
            fingerprint = Fingerprint.parse(raw).hex
        except CeremonyError:
            raise PlanError(
                "Plan field kek.fingerprint is not a SHA-256 fingerprint.",
                "Copy it exactly as the vault owner gave it: 64 hex digits or the 32 PGP words.",
            ) from None
        path = (base / file).resolve() if file is not None else None
        return cls(name=name, fingerprint=fingerprint, version=version, file=path)


@dataclass(frozen=True)
class HsmSection:
    """The on-premises HSM: the PKCS#11 module to load and the label of the token to use."""

    module: str
    token: str
    # True: target keys are CKA_WRAP_WITH_TRUSTED, wrappable only under the KEK the security
    # officer marked trusted. False is an explicit acceptance that the token cannot do this.
    wrap_with_trusted: bool = True

    @classmethod
    def read(cls, data: Any) -> HsmSection:
        t = _Table("hsm", data)
        module = t.text("module")
        token = t.text("token", re.compile(r"^.{1,32}$"))
        trusted = t.take("wrap_with_trusted", bool, default=True)
        t.done()
        return cls(module=module, token=token, wrap_with_trusted=trusted)


@dataclass(frozen=True)
class KeyPlan:
    """One target key: what to generate in the HSM and how Azure should hold it after import."""

    name: str
    spec: KeySpec
    key_ops: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    not_before: dt.datetime | None = None
    expires: dt.datetime | None = None
    exportable: bool = False
    release_policy: Mapping[str, Any] | None = None

    @classmethod
    def read(cls, index: int, data: Any, base: Path, now: dt.datetime) -> KeyPlan:
        t = _Table(f"keys[{index}]", data)
        name = t.text("name", NAME_RE)
        kty = t.text("type", hint="Add type = 'RSA-HSM', 'EC-HSM' or 'oct-HSM'.")
        size = t.take("size", int, default=None)
        curve = t.text("curve", default=None)
        try:
            spec = KeySpec(kty, size, curve)
        except CeremonyError as exc:
            raise PlanError(
                f"Plan field keys[{index}] ({name}): {exc.message}", exc.remedy
            ) from None
        ops = t.take(
            "key_ops", list, hint="List the operations, e.g. key_ops = ['sign', 'verify']."
        )
        tags = t.take("tags", dict, default={})
        enabled = t.take("enabled", bool, default=True)
        not_before = t.take("not_before", dt.datetime, default=None)
        expires = t.take("expires", dt.datetime, default=None)
        exportable = t.take("exportable", bool, default=False)
        policy = t.take("release_policy", (str, dict), default=None)
        t.done()
        where = f"keys[{index}]"
        allowed = KEY_OPS[spec.family]
        if not ops or len(set(ops)) != len(ops) or any(op not in allowed for op in ops):
            raise PlanError(
                f"Plan field {where}.key_ops is {ops!r}; a {spec.kty} key allows {list(allowed)}.",
                "List each allowed operation at most once.",
            )
        if any(not isinstance(k, str) or not isinstance(v, str) for k, v in tags.items()):
            raise PlanError(f"Plan field {where}.tags must map text to text.", "Quote the values.")
        for label, moment in (("not_before", not_before), ("expires", expires)):
            if moment is not None and moment.utcoffset() is None:
                raise PlanError(
                    f"Plan field {where}.{label} has no time zone.",
                    "Write it with an offset, e.g. 2027-01-01T00:00:00Z.",
                )
        if expires is not None and expires <= max(now, not_before or now):
            raise PlanError(
                f"Plan field {where}.expires is not after not_before and the present.",
                "Choose a later expiry date.",
            )
        release_policy = _release_policy(where, policy, base)
        if exportable and release_policy is None:
            raise PlanError(
                f"Plan field {where}.exportable is true but there is no release_policy.",
                "Azure refuses an exportable key without a release policy: add release_policy.",
            )
        if release_policy is not None and not exportable:
            raise PlanError(
                f"Plan field {where}.release_policy is set but exportable is false.",
                "Set exportable = true, or remove the release policy.",
            )
        return cls(
            name, spec, tuple(ops), dict(tags), enabled, not_before, expires, exportable,
            release_policy,
        )  # fmt: skip


def _release_policy(where: str, policy: Any, base: Path) -> Mapping[str, Any] | None:
    """A release policy is an inline table or the path of a JSON file beside the plan."""
    if policy is None or isinstance(policy, dict):
        return policy
    path = base / policy
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(
            f"Plan field {where}.release_policy: cannot read JSON file {path} ({exc}).",
            "Give the path of a JSON release policy, relative to the plan file.",
        ) from None
    if not isinstance(loaded, dict):
        raise PlanError(f"Release policy {path} is not a JSON object.", "Fix the policy file.")
    return loaded


@dataclass(frozen=True)
class PersonPlan:
    """A person present at the ceremony and how they sign: public key file and signer reference."""

    name: str
    role: str
    public_key_pem: str
    signer: str

    @property
    def pin_variable(self) -> str:
        """The environment variable that may carry this person's signing-token PIN."""
        return "CEREMONY_PIN_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())

    @classmethod
    def read(cls, index: int, data: Any, base: Path) -> PersonPlan:
        t = _Table(f"people[{index}]", data)
        name = t.text("name", PERSON_RE)
        role = t.text("role")
        key_file = t.text("public_key", hint="Give the path of the person's public key PEM file.")
        signer = t.text("signer", hint="Give the signer reference for the person's signing key.")
        t.done()
        if role not in ROLES:
            raise PlanError(
                f"Plan field people[{index}] ({name}).role is {role!r}.",
                f"Use one of {', '.join(ROLES)}.",
            )
        path = (base / key_file).resolve()
        try:
            pem = path.read_text(encoding="ascii")
        except (OSError, ValueError) as exc:
            raise PlanError(
                f"Plan field people[{index}] ({name}).public_key: cannot read {path} ({exc}).",
                "Give the path of the person's public key PEM, relative to the plan file.",
            ) from None
        if "PRIVATE KEY" in pem:
            raise PlanError(
                f"Plan field people[{index}] ({name}).public_key points to a private key.",
                "Give the public key only; private keys never go near the plan.",
            )
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            load_pem_public_key(pem.encode())
        except ValueError:
            raise PlanError(
                f"Plan field people[{index}] ({name}).public_key: {path} is not a PEM public key.",
                "Export the public key as a SubjectPublicKeyInfo PEM.",
            ) from None
        from ceremony.signers import parse_reference

        try:
            parse_reference(signer)
        except CeremonyError as exc:
            raise PlanError(
                f"Plan field people[{index}] ({name}).signer: {exc.message}", exc.remedy
            ) from None
        return cls(name, role, pem, signer)

    def to_person(self):
        """The evidence module's view of this person."""
        from ceremony.people import Person

        return Person(self.name, self.role, self.public_key_pem, self.signer)


@dataclass(frozen=True)
class Plan:
    """A validated ceremony plan; `sha256` binds a workspace to the exact file that was reviewed."""

    path: Path
    sha256: str
    ceremony: CeremonySection
    vault: VaultSection
    kek: KekSection
    hsm: HsmSection
    keys: tuple[KeyPlan, ...]
    people: tuple[PersonPlan, ...]
    quorum: Mapping[str, int]

    def with_role(self, role: str) -> tuple[PersonPlan, ...]:
        return tuple(p for p in self.people if p.role == role)

    def to_people(self) -> tuple[list, Any]:
        """People and quorum as the evidence module takes them."""
        from ceremony.people import Quorum

        return [p.to_person() for p in self.people], Quorum(dict(self.quorum))


def _refuse_secrets(data: Any, where: str = "") -> None:
    """Walk every table: a key named like a PIN or password is refused wherever it appears."""
    if isinstance(data, list):
        for i, item in enumerate(data):
            _refuse_secrets(item, f"{where}[{i}]")
        return
    if not isinstance(data, Mapping):
        return
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        words = re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", str(key)).lower())
        if SECRET_WORDS.intersection(words) or str(key).lower().replace("_", "") in SECRET_WORDS:
            raise PlanError(f"Plan field {path} looks like a secret.", SECRET_REMEDY)
        _refuse_secrets(value, path)


def _quorum(data: Any, people: tuple[PersonPlan, ...]) -> dict[str, int]:
    t = _Table("quorum", data)
    quorum = {}
    for role in ROLES:
        count = t.take(role, int, default=0)
        present = sum(p.role == role for p in people)
        if count < 0 or count > present:
            raise PlanError(
                f"Plan field quorum.{role} asks for {count}; the plan lists {present} {role}(s).",
                f"Lower quorum.{role} or add people with role {role!r}.",
            )
        if count:
            quorum[role] = count
    t.done()
    if not quorum:
        raise PlanError("Plan field quorum requires nobody.", "Require at least one signature.")
    return quorum


def parse_plan(text: str, *, path: Path, now: dt.datetime | None = None) -> Plan:
    """Validate plan text completely; the first problem found is raised as a PlanError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"Plan {path} is not valid TOML: {exc}.", "Fix the syntax.") from None
    _refuse_secrets(data)
    now = now or dt.datetime.now(dt.UTC)
    base = path.parent
    top = _Table("plan", data)
    ceremony = CeremonySection.read(top.take("ceremony", dict))
    vault = VaultSection.read(top.take("vault", dict), base)
    kek = KekSection.read(top.take("kek", dict), base)
    hsm = HsmSection.read(top.take("hsm", dict))
    raw_keys = top.take("keys", list, hint="Add at least one [[keys]] table.")
    raw_people = top.take("people", list, hint="Add a [[people]] table for everyone present.")
    raw_quorum = top.take("quorum", dict)
    top.done()
    if not raw_keys:
        raise PlanError("Plan field keys is empty.", "Add at least one [[keys]] table.")
    keys = tuple(KeyPlan.read(i, k, base, now) for i, k in enumerate(raw_keys))
    seen: set[str] = {kek.name.lower()}
    for key in keys:
        if key.name.lower() in seen:
            raise PlanError(
                f"Plan field keys: the name {key.name!r} is used twice (or is the KEK's name).",
                "Give every key its own name.",
            )
        seen.add(key.name.lower())
        try:
            key.spec.check_flavour(vault.flavour)
        except CeremonyError as exc:
            raise PlanError(f"Plan key {key.name!r}: {exc.message}", exc.remedy) from None
    people = tuple(PersonPlan.read(i, p, base) for i, p in enumerate(raw_people))
    if len({p.name for p in people}) != len(people):
        raise PlanError("Plan field people names someone twice.", "List each person once.")
    if not any(p.role == "witness" for p in people):
        raise PlanError(
            "Plan field people lists no witness.", "Add at least one person with role 'witness'."
        )
    if not any(p.role == "administrator" for p in people):
        raise PlanError(
            "Plan field people lists no administrator.",
            "Add the person who drives the workbook with role 'administrator'.",
        )
    quorum = _quorum(raw_quorum, people)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Plan(path, digest, ceremony, vault, kek, hsm, keys, people, quorum)


def load_plan(path: str | Path) -> Plan:
    """Read and validate the plan file at `path`."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"Cannot read the plan {path} ({exc}).", "Check the path.") from None
    return parse_plan(text, path=path)
