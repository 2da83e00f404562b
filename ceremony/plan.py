"""plan: the ceremony plan file (TOML) — its schema, strict validation and typed sections.

Owns reading and checking the one reviewed document that says what a ceremony does; every wrong
field is named in one reading. It never holds a secret (a field that looks like a PIN or password
is refused) and never touches an HSM or vault.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ceremony.errors import CeremonyError, PlanError
from ceremony.fingerprint import Fingerprint
from ceremony.keyspec import KeySpec
from ceremony.plan_problems import PlanProblem, PlanProblems, problem, problems_of
from ceremony.wrap_paths import AUTO, TWO_STEP, WrapChoice

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
PERSON_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
VERSION_RE = re.compile(r"^[0-9a-zA-Z]{1,64}$")
TOKEN_RE = re.compile(r"^.{1,32}$")
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
# What to do when a field is missing, where "Add it" is not enough.
HINTS = {
    "fingerprint": "Add the KEK's SHA-256 fingerprint, obtained from the vault owner out of band.",
    "type": "Add type = 'RSA-HSM', 'EC-HSM' or 'oct-HSM'.",
    "key_ops": "List the operations, e.g. key_ops = ['sign', 'verify'].",
    "public_key": "Give the path of the person's public key PEM file.",
    "signer": "Give the signer reference for the person's signing key.",
    "keys": "Add at least one [[keys]] table.",
    "people": "Add a [[people]] table for everyone present.",
}


def _text(value: str) -> str:
    if not value.strip():
        raise problem("is empty", "Give it a value.")
    return value


def _matching(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise problem(f"is {value!r}, which does not match {pattern.pattern}", "Rename it.")
        return value

    return AfterValidator(check)


def _beside_plan(value: Any, info: ValidationInfo) -> Path:
    """A path in the plan is relative to the plan file."""
    if not isinstance(value, str) or not value.strip():
        raise problem("must be a path (text)", "Give a path relative to the plan file.")
    return (info.context["base"] / value).resolve()


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Text = Annotated[str, AfterValidator(_text)]
Name = Annotated[str, AfterValidator(_text), _matching(NAME_RE)]
PersonName = Annotated[str, AfterValidator(_text), _matching(PERSON_RE)]
PathBesidePlan = Annotated[Path, BeforeValidator(_beside_plan)]


class _Section(BaseModel):
    """A plan table: strict TOML types, no unknown fields, immutable once read."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CeremonySection(_Section):
    """Who and why: the identity every workspace file and transcript line is bound to."""

    id: Name
    purpose: Text


class VaultSection(_Section):
    """Where the keys go: the vault (or Managed HSM) URL and which flavour it is."""

    url: Text
    flavour: Text
    local_state: PathBesidePlan | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def is_local(self) -> bool:
        """The rehearsal vault on this machine, not Azure."""
        return self.host in LOCAL_HOSTS

    @field_validator("url")
    @classmethod
    def _vault_url(cls, url: str) -> str:
        url = url.rstrip("/")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.path or parts.query:
            raise problem(
                f"is {url!r}, which is not a vault URL",
                "Write it as https://<name>.vault.azure.net or https://<name>.managedhsm.azure.net.",
            )
        return url

    @field_validator("flavour")
    @classmethod
    def _known_flavour(cls, flavour: str) -> str:
        if flavour not in FLAVOUR_HOSTS:
            raise problem(f"is {flavour!r}", "Use 'keyvault' or 'managed-hsm'.")
        return flavour

    @model_validator(mode="after")
    def _flavour_fits_host(self) -> VaultSection:
        if not self.is_local:
            other = next(f for f in FLAVOUR_HOSTS if f != self.flavour)
            if self.host.endswith(FLAVOUR_HOSTS[other]):
                raise problem(
                    f"is {self.flavour!r} but {self.host} is a {other} host",
                    f"Set vault.flavour = {other!r} or correct vault.url.",
                    field="flavour",
                )
            if self.local_state is not None:
                raise problem(
                    "is set for a vault that is not on this machine",
                    "Remove local_state: it names the rehearsal vault's directory only.",
                    field="local_state",
                )
        elif self.local_state is None:
            raise problem(
                f"points to this machine ({self.host}) but local_state is missing",
                "Give local_state, the local vault's state directory (rehearsals only).",
                field="url",
            )
        return self


def _fingerprint(raw: str) -> str:
    try:
        return Fingerprint.parse(raw).hex
    except CeremonyError:
        raise problem(
            "is not a SHA-256 fingerprint",
            "Copy it exactly as the vault owner gave it: 64 hex digits or the 32 PGP words.",
        ) from None


class KekSection(_Section):
    """The key exchange key: its name, optional version and the fingerprint agreed out of band."""

    name: Name
    fingerprint: Annotated[str, AfterValidator(_text), AfterValidator(_fingerprint)]
    version: Annotated[str, _matching(VERSION_RE)] | None = None
    # The KEK's public key as `az keyvault key download` wrote it, when it is carried in rather
    # than fetched: it is read from here (never from the workspace, which the medium exposes).
    file: PathBesidePlan | None = None

    @model_validator(mode="after")
    def _file_needs_a_version(self) -> KekSection:
        if self.file is not None and self.version is None:
            raise problem(
                "is set but kek.version is not",
                "Add kek.version: a .byok package must name the exact KEK version.",
                field="file",
            )
        return self


class HsmSection(_Section):
    """The on-premises HSM: the PKCS#11 module to load and the label of the token to use."""

    module: Text
    token: Annotated[str, AfterValidator(_text), _matching(TOKEN_RE)]
    # True: target keys are CKA_WRAP_WITH_TRUSTED, wrappable only under the KEK the security
    # officer marked trusted. False is an explicit acceptance that the token cannot do this.
    wrap_with_trusted: bool = True
    # The wrap path: "auto" (native CKM_RSA_AES_KEY_WRAP where its self-test passes, else the two
    # steps), "native", or "two-step" (RFC 5649 + RSA-OAEP inside the HSM, for a token whose
    # native mechanism misbehaves).
    wrap: WrapChoice = AUTO

    @model_validator(mode="after")
    def _two_step_is_untrusted(self) -> HsmSection:
        # The two steps wrap the key under an ephemeral AES key, which only the security officer
        # could mark trusted: a CKA_WRAP_WITH_TRUSTED key cannot take that path.
        if self.wrap == TWO_STEP and self.wrap_with_trusted:
            raise problem(
                "is 'two-step', but wrap_with_trusted is true and a key only the trusted KEK may "
                "wrap can be wrapped by the native mechanism alone",
                "Use wrap = 'native' or 'auto', or accept the weaker protection explicitly: "
                "wrap_with_trusted = false.",
                field="wrap",
            )
        return self


def _release_policy(policy: Any, info: ValidationInfo) -> Mapping[str, Any] | None:
    """A release policy is an inline table or the path of a JSON file beside the plan."""
    if policy is None or isinstance(policy, dict):
        return policy
    if not isinstance(policy, str):
        raise problem(f"must be a table or a path, not {type(policy).__name__}", "Fix its type.")
    path = info.context["base"] / policy
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise problem(
            f"names {path}, which cannot be read as JSON ({getattr(exc, 'strerror', None) or exc})",
            "Give the path of a JSON release policy, relative to the plan file.",
        ) from None
    if not isinstance(loaded, dict):
        raise problem(f"file {path} is not a JSON object", "Fix the policy file.")
    return loaded


class KeyPlan(_Section):
    """One target key: what to generate in the HSM and how Azure should hold it after import."""

    name: Name
    type: Text
    size: int | None = None
    curve: Text | None = None
    key_ops: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
    tags: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    not_before: dt.datetime | None = None
    expires: dt.datetime | None = None
    exportable: bool = False
    release_policy: Annotated[Any, AfterValidator(_release_policy)] = None

    @property
    def spec(self) -> KeySpec:
        return KeySpec(self.type, self.size, self.curve)

    @field_validator("not_before", "expires")
    @classmethod
    def _with_time_zone(cls, moment: dt.datetime | None) -> dt.datetime | None:
        if moment is not None and moment.utcoffset() is None:
            raise problem("has no time zone", "Write it with an offset, e.g. 2027-01-01T00:00:00Z.")
        return moment

    @model_validator(mode="after")
    def _coherent(self, info: ValidationInfo) -> KeyPlan:
        try:
            spec = self.spec
        except CeremonyError as exc:
            raise problem(f"({self.name}): {exc.message}", exc.remedy) from None
        allowed = KEY_OPS[spec.family]
        ops = self.key_ops
        if not ops or len(set(ops)) != len(ops) or any(op not in allowed for op in ops):
            raise problem(
                f"is {list(ops)!r}; a {spec.kty} key allows {list(allowed)}",
                "List each allowed operation at most once.",
                field="key_ops",
            )
        now = info.context["now"]
        if self.expires is not None and self.expires <= max(now, self.not_before or now):
            raise problem(
                "is not after not_before and the present",
                "Choose a later expiry date.",
                field="expires",
            )
        if self.exportable and self.release_policy is None:
            raise problem(
                "is true but there is no release_policy",
                "Azure refuses an exportable key without a release policy: add release_policy.",
                field="exportable",
            )
        if self.release_policy is not None and not self.exportable:
            raise problem(
                "is set but exportable is false",
                "Set exportable = true, or remove the release policy.",
                field="release_policy",
            )
        return self


def _public_key_file(value: Any, info: ValidationInfo) -> str:
    """The PEM of a person's public key file, refused when it is anything else."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    path = _beside_plan(value, info)
    try:
        pem = path.read_text(encoding="ascii")
    except (OSError, ValueError) as exc:
        raise problem(
            f"names {path}, which cannot be read ({getattr(exc, 'strerror', None) or exc})",
            "Give the path of the person's public key PEM, relative to the plan file.",
        ) from None
    if "PRIVATE KEY" in pem:
        raise problem(
            "points to a private key", "Give the public key only; private keys never go near it."
        )
    try:
        load_pem_public_key(pem.encode())
    except ValueError:
        raise problem(
            f"is not a PEM public key: {path}",
            "Export the public key as a SubjectPublicKeyInfo PEM.",
        ) from None
    return pem


def _signer_reference(signer: str) -> str:
    from ceremony.signers import parse_reference

    try:
        parse_reference(signer)
    except CeremonyError as exc:
        raise problem(f"is not usable: {exc.message}", exc.remedy) from None
    return signer


class PersonPlan(_Section):
    """A person present at the ceremony and how they sign: public key file and signer reference.

    A `file:` signer's path, like every path in the plan, is relative to the plan file."""

    name: PersonName
    role: Text
    public_key_pem: Annotated[str, BeforeValidator(_public_key_file)] = Field(alias="public_key")
    signer: Annotated[str, AfterValidator(_text), AfterValidator(_signer_reference)]
    _base: Path = PrivateAttr(default=Path())

    def model_post_init(self, context: Any) -> None:
        if isinstance(context, dict) and "base" in context:
            self._base = context["base"]

    @property
    def pin_variable(self) -> str:
        """The environment variable that may carry this person's signing-token PIN."""
        return "CEREMONY_PIN_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())

    @property
    def key_file(self) -> Path | None:
        """The signing key file of a `file:` signer, resolved against the plan's folder."""
        if not self.signer.startswith("file:"):
            return None
        return (self._base / self.signer.removeprefix("file:")).resolve()

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in ROLES:
            raise problem(f"is {role!r}", f"Use one of {', '.join(ROLES)}.")
        return role

    def to_person(self):
        """The evidence module's view of this person."""
        from ceremony.people import Person

        return Person(self.name, self.role, self.public_key_pem, self.signer)


class QuorumSection(_Section):
    """How many signatures of each role the evidence needs."""

    administrator: Annotated[int, Field(ge=0)] = 0
    custodian: Annotated[int, Field(ge=0)] = 0
    witness: Annotated[int, Field(ge=0)] = 0
    auditor: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _somebody(self) -> QuorumSection:
        if not self.required():
            raise problem("requires nobody", "Require at least one signature.")
        return self

    def required(self) -> dict[str, int]:
        return {role: getattr(self, role) for role in ROLES if getattr(self, role)}


class _PlanDocument(_Section):
    """The whole file as written; cross-section rules are checked once every section is valid."""

    ceremony: CeremonySection
    vault: VaultSection
    kek: KekSection
    hsm: HsmSection
    keys: list[KeyPlan] = Field(min_length=1)
    people: list[PersonPlan]
    quorum: QuorumSection


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


def _without_secrets(data: Any, where: str = "") -> tuple[Any, list[PlanProblem]]:
    """The plan data without any key named like a PIN or password, and a problem for each one.

    The rest is validated as usual, so a secret does not hide the plan's other mistakes."""
    if isinstance(data, list):
        pairs = [_without_secrets(item, f"{where}[{i}]") for i, item in enumerate(data)]
        return [clean for clean, _ in pairs], [p for _, found in pairs for p in found]
    if not isinstance(data, Mapping):
        return data, []
    clean, found = {}, []
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        words = re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", str(key)).lower())
        if SECRET_WORDS.intersection(words) or str(key).lower().replace("_", "") in SECRET_WORDS:
            found.append(PlanProblem(path, "looks like a secret", SECRET_REMEDY))
            continue
        clean[key], inner = _without_secrets(value, path)
        found += inner
    return clean, found


def _across_sections(doc: _PlanDocument) -> list[PlanProblem]:
    """Rules that tie sections together: unique names, roles present, a quorum the people meet."""
    found, seen = [], {doc.kek.name.lower()}
    for index, key in enumerate(doc.keys):
        where = f"keys[{index}]"
        if key.name.lower() in seen:
            found.append(PlanProblem(
                f"{where}.name", f"{key.name!r} is used twice (or is the KEK's name)",
                "Give every key its own name.",
            ))  # fmt: skip
        seen.add(key.name.lower())
        try:
            key.spec.check_flavour(doc.vault.flavour)
        except CeremonyError as exc:
            found.append(PlanProblem(where, f"({key.name}): {exc.message}", exc.remedy))
    names = [p.name for p in doc.people]
    if len(set(names)) != len(names):
        found.append(PlanProblem("people", "names someone twice", "List each person once."))
    for role, remedy in (
        ("witness", "Add at least one person with role 'witness'."),
        ("administrator", "Add the person who drives the workbook with role 'administrator'."),
    ):
        if not any(p.role == role for p in doc.people):
            found.append(PlanProblem("people", f"lists no {role}", remedy))
    for role, count in doc.quorum.required().items():
        present = sum(p.role == role for p in doc.people)
        if count > present:
            found.append(PlanProblem(
                f"quorum.{role}", f"asks for {count}; the plan lists {present} {role}(s)",
                f"Lower quorum.{role} or add people with role {role!r}.",
            ))  # fmt: skip
    return found


def parse_plan(text: str, *, path: Path, now: dt.datetime | None = None) -> Plan:
    """Validate plan text completely; every problem found is raised at once as PlanProblems."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"Plan {path} is not valid TOML: {exc}.", "Fix the syntax.") from None
    data, secrets = _without_secrets(data)
    context = {"base": path.parent, "now": now or dt.datetime.now(dt.UTC)}
    try:
        doc = _PlanDocument.model_validate(data, context=context)
    except ValidationError as exc:
        raise PlanProblems(path, secrets + problems_of(exc, HINTS)) from None
    found = secrets + _across_sections(doc)
    if found:
        raise PlanProblems(path, found)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Plan(
        path, digest, doc.ceremony, doc.vault, doc.kek, doc.hsm, tuple(doc.keys),
        tuple(doc.people), doc.quorum.required(),
    )  # fmt: skip


def load_plan(path: str | Path) -> Plan:
    """Read and validate the plan file at `path`."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"Cannot read the plan {path} ({exc}).", "Check the path.") from None
    return parse_plan(text, path=path)
