"""vault.importer: put a .byok package into the vault its KEK lives in, exactly once.

Refuses early what it can (wrong vault, wrong type, name taken); an import whose answer was lost is
found again by its import-id tag (or its public key) and never imported twice.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    DecodeError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from ceremony.errors import RefusedError, UsageError, VaultError
from ceremony.keyspec import AES_SIZES, EC_CURVES, KEY_TYPES
from ceremony.publickey import PublicKey, public_key_from_jwk, spki_der
from ceremony.vault.connect import VaultConnection, vault_errors, vault_host
from ceremony.vault.kek import Kek, kek_from_key

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient, KeyVaultKey

IMPORT_ID_TAG = "ceremony-import-id"
DEFAULT_OPS = {
    "RSA-HSM": ("sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey"),
    "EC-HSM": ("sign", "verify"),
    "oct-HSM": ("encrypt", "decrypt", "wrapKey", "unwrapKey"),
}
# Size of the AES-KWP output (RFC 5649) that wraps the target, by family: an AES key is its raw
# 16/24/32 bytes; an EC PKCS#8 is 67..241 bytes; an RSA PKCS#8 is at least ~1190 bytes.
_EC_WRAPPED = range(48, 321)
_RSA_WRAPPED = range(600, 3001)


@dataclass(frozen=True)
class ImportOptions:
    """Everything about the imported key besides its material: what Azure's import accepts."""

    key_ops: tuple[str, ...] | None = None
    enabled: bool = True
    not_before: datetime | None = None
    expires_on: datetime | None = None
    exportable: bool = False
    release_policy: bytes | None = None
    immutable_release_policy: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    new_version: bool = False

    def __post_init__(self) -> None:
        if self.exportable and self.release_policy is None:
            raise UsageError(
                "An exportable key needs a release policy.",
                "Give the secure key release policy (JSON) or drop exportable.",
            )
        if IMPORT_ID_TAG in self.tags:
            raise UsageError(f"The tag {IMPORT_ID_TAG} is set by the ceremony.", "Drop it.")


@dataclass(frozen=True)
class ImportTarget:
    """The key type an operator asked for, checked against the package before anything is sent."""

    kty: str
    curve: str | None = None
    aes_size: int | None = None

    @property
    def algorithm_family(self) -> str:
        return {"RSA-HSM": "RSA", "EC-HSM": "EC", "oct-HSM": "AES"}[self.kty]

    def describe(self) -> str:
        if self.kty == "EC-HSM":
            return f"EC-HSM {self.curve}"
        return f"oct-HSM {self.aes_size}" if self.aes_size else self.kty


@dataclass(frozen=True)
class ImportResult:
    """The key in the vault after an import, and whether an earlier, lost import was found."""

    key: KeyVaultKey
    target: ImportTarget
    kek: Kek
    import_id: str
    recognised: bool
    attempts: int


def import_id_of(byok: bytes) -> str:
    """The ceremony import id: SHA-256 of the exact .byok bytes, carried as a tag."""
    return hashlib.sha256(byok).hexdigest()


def check_target(kty: str, curve: str | None, flavour: str | None) -> None:
    """Refuse an unknown type, a missing or stray curve, and oct-HSM outside a Managed HSM."""
    if kty not in KEY_TYPES:
        raise UsageError(f"--type {kty} cannot be imported.", f"Use one of {', '.join(KEY_TYPES)}.")
    if kty == "EC-HSM" and curve not in EC_CURVES:
        raise UsageError(
            f"An EC-HSM import needs --curve, one of {', '.join(EC_CURVES)}.",
            "Give the curve the HSM key was generated on.",
        )
    if kty != "EC-HSM" and curve is not None:
        raise UsageError(f"--curve applies to EC-HSM only, not {kty}.", "Drop --curve.")
    if kty == "oct-HSM" and flavour == "keyvault":
        raise UsageError(
            "oct-HSM (AES) keys can be imported only into Azure Managed HSM.",
            "Target a Managed HSM, or choose an RSA-HSM or EC-HSM key.",
        )


def check_ciphertext(
    kty: str, curve: str | None, ciphertext: bytes, kek_bytes: int
) -> ImportTarget:
    """Refuse a package whose wrapped part cannot hold a key of the asked type.

    The real check happens at the vault when it unwraps; this catches a mixed-up file early.
    """
    wrapped = len(ciphertext) - kek_bytes
    if wrapped < 24 or wrapped % 8:
        raise RefusedError(
            f"The .byok ciphertext ({len(ciphertext)} bytes) is not a {kek_bytes * 8}-bit RSA-OAEP "
            "block followed by an AES key wrap.",
            "Wrap the key again under this KEK (ceremony byok).",
        )
    aes_size = {24: 128, 32: 192, 40: 256}.get(wrapped)
    found = "unknown"
    if aes_size in AES_SIZES:
        found = "AES"
    elif wrapped in _EC_WRAPPED:
        found = "EC"
    elif wrapped in _RSA_WRAPPED:
        found = "RSA"
    target = ImportTarget(kty, curve, aes_size if kty == "oct-HSM" else None)
    if found != target.algorithm_family:
        raise RefusedError(
            f"The .byok holds a wrapped key of {wrapped} bytes, which is not a {kty} key "
            f"({'an ' + found if found != 'unknown' else 'no known'} key type fits).",
            "Give the --type (and --curve) the key was generated with, or the right .byok file.",
        )
    return target


def _versions(client: KeyClient, name: str) -> list[Any]:
    try:
        return list(client.list_properties_of_key_versions(name))
    except ResourceNotFoundError:
        return []


def find_imported(
    conn: VaultConnection, name: str, import_id: str, hsm_public: PublicKey | None = None
) -> KeyVaultKey | None:
    """An existing version that is this import: same import-id tag, or same public key."""
    client = conn.key_client()
    with vault_errors(f"list the versions of {name}", conn.url):
        versions = _versions(client, name)
        for props in versions:
            if (props.tags or {}).get(IMPORT_ID_TAG) == import_id:
                return client.get_key(name, props.version)
        if hsm_public is None:
            return None
        wanted = spki_der(hsm_public)
        for props in versions:
            key = client.get_key(name, props.version)
            try:
                if spki_der(public_key_from_jwk(key.key)) == wanted:
                    return key
            except VaultError:
                continue
    return None


def _ambiguous(exc: Exception) -> bool:
    """True when the vault may have committed the import although no usable answer came back:
    a broken connection, an answer cut short, or a server error."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError | DecodeError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, HttpResponseError) and (status is None or status >= 500)


def fetch_package_kek(conn: VaultConnection, kid: str) -> Kek:
    """The KEK a package was wrapped for; it must be on this vault and still pass every check."""
    from ceremony.byok import parse_kid

    kek_id = parse_kid(kid)
    if vault_host(kek_id.vault_url) != conn.host:
        raise RefusedError(
            f"The .byok was wrapped for a KEK on {vault_host(kek_id.vault_url)}, "
            f"not on the target vault {conn.host}.",
            "Import into the vault that holds the KEK, or wrap again under this vault's KEK.",
        )
    client = conn.key_client()
    try:
        with vault_errors(f"fetch the KEK {kek_id.name}", conn.url):
            key = client.get_key(kek_id.name, kek_id.version)
    except ResourceNotFoundError:
        raise RefusedError(
            f"The KEK {kid} named by the .byok does not exist in {conn.url}.",
            "Check the vault; wrap again under an existing KEK.",
        ) from None
    return kek_from_key(key, conn.url)


def import_byok(
    conn: VaultConnection,
    name: str,
    byok: bytes,
    kty: str,
    *,
    curve: str | None = None,
    options: ImportOptions | None = None,
    hsm_public: PublicKey | None = None,
) -> ImportResult:
    """Import `byok` as key `name`, or recognise that this very package is already there.

    Order: type checks, package checks, KEK checks, look for an earlier import of the same package,
    refuse an existing name (unless new_version), then import with bounded retries; after an
    ambiguous failure (5xx, broken connection) look again before trying once more.
    """
    from azure.keyvault.keys import JsonWebKey, KeyReleasePolicy

    from ceremony.byok import parse_byok

    options = options or ImportOptions()
    check_target(kty, curve, conn.flavour)
    package = parse_byok(byok)
    kek = fetch_package_kek(conn, package.kid)
    target = check_ciphertext(kty, curve, package.ciphertext, kek.size // 8)
    import_id = import_id_of(byok)

    existing = find_imported(conn, name, import_id, hsm_public)
    if existing is not None:
        return ImportResult(existing, target, kek, import_id, recognised=True, attempts=0)
    if not options.new_version and _name_taken(conn, name):
        raise RefusedError(
            f"The vault {conn.url} already has a key named {name}.",
            "Choose another name, or pass --new-version to add a version to it.",
        )

    jwk = JsonWebKey(
        kty=kty,
        t=byok,
        key_ops=list(options.key_ops or DEFAULT_OPS[kty]),
        crv=curve,
    )
    policy = None
    if options.release_policy is not None:
        policy = KeyReleasePolicy(
            options.release_policy, immutable=options.immutable_release_policy
        )
    client = conn.key_client()
    attempts = 0
    while True:
        attempts += 1
        try:
            key = client.import_key(
                name,
                jwk,
                hardware_protected=True,
                enabled=options.enabled,
                not_before=options.not_before,
                expires_on=options.expires_on,
                exportable=options.exportable or None,
                release_policy=policy,
                tags={**options.tags, IMPORT_ID_TAG: import_id},
            )
            return ImportResult(key, target, kek, import_id, recognised=False, attempts=attempts)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            if not _ambiguous(exc) or attempts > conn.retry.status:
                with vault_errors(f"import {name}", conn.url):
                    raise
            found = find_imported(conn, name, import_id, hsm_public)
            if found is not None:
                return ImportResult(found, target, kek, import_id, True, attempts)
            time.sleep(min(conn.retry.backoff_factor * 2 ** (attempts - 1), conn.retry.backoff_max))


def _name_taken(conn: VaultConnection, name: str) -> bool:
    client = conn.key_client()
    try:
        with vault_errors(f"look up the key {name}", conn.url):
            client.get_key(name)
    except ResourceNotFoundError:
        return False
    return True
