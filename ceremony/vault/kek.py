"""vault.kek: the key exchange key — create it, fetch it, check every property Azure requires.

The checks are pure functions over the SDK's KeyVaultKey so they can be tested on any input.
Never accepts a KEK that fails a check, and never continues past a fingerprint mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError
from cryptography.hazmat.primitives.asymmetric import rsa

from ceremony.errors import RefusedError, UsageError, VaultError
from ceremony.files import refuse_existing, write_new
from ceremony.fingerprint import Fingerprint, fingerprint_public_key
from ceremony.keyspec import RSA_SIZES
from ceremony.publickey import load_public_key, public_key_from_jwk, spki_pem
from ceremony.vault.connect import VaultConnection, vault_errors, vault_host

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyVaultKey

    from ceremony.evidence.records import KekRecord

KEK_OPS = ("import",)


@dataclass(frozen=True)
class Kek:
    """A KEK that passed every check: its identity, attributes, public key and fingerprint."""

    kid: str
    vault_url: str
    name: str
    version: str
    size: int
    key_ops: tuple[str, ...]
    not_before: datetime | None
    expires_on: datetime | None
    created_on: datetime | None
    public_key_pem: str
    fingerprint: Fingerprint
    source: str = "vault"  # "vault" (fetched and checked there) or "file" (a PEM carried in)

    def to_evidence(self, out_of_band_sha256: str | None = None) -> KekRecord:
        """kek.json in the evidence schema; `out_of_band_sha256` is the fingerprint confirmed."""
        from ceremony.evidence.records import KekRecord

        return KekRecord(
            kid=self.kid,
            kty="RSA-HSM",
            size=self.size,
            key_ops=list(self.key_ops),
            public_key_sha256=self.fingerprint.hex,
            source=self.source,
            out_of_band_sha256=out_of_band_sha256,
        )


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _value(item: Any) -> str:
    return str(getattr(item, "value", item))


def split_key_id(kid: str) -> tuple[str, str, str | None]:
    """(vault host, name, version or None) of a key identifier https://host/keys/name[/version]."""
    from azure.keyvault.keys import KeyVaultKeyIdentifier

    try:
        parsed = KeyVaultKeyIdentifier(kid)
    except ValueError:
        raise VaultError(f"{kid!r} is not a Key Vault key identifier.", "") from None
    return vault_host(parsed.vault_url), parsed.name, parsed.version or None


def check_kek(key: KeyVaultKey, vault_url: str, *, now: datetime | None = None) -> None:
    """Refuse a KEK Azure would not accept or that does not belong to this vault.

    Checks: versioned kid on the same vault host, kty RSA-HSM, 2048/3072/4096 bits, key_ops
    exactly ["import"], enabled, now inside not-before/expires.
    """
    kid = key.id or ""
    host, name, version = split_key_id(kid)
    if host != vault_host(vault_url):
        raise RefusedError(
            f"The KEK {kid} lives on {host}, not on the target vault {vault_host(vault_url)}.",
            "Create or fetch the KEK in the vault that will receive the key.",
        )
    if not version:
        raise RefusedError(
            f"The KEK identifier {kid} has no version.", "Use the full versioned kid."
        )
    kty = _value(key.key_type)
    if kty == "RSA":
        raise RefusedError(
            f"The KEK {name} is a software-protected RSA key, not HSM-backed (RSA-HSM).",
            "Create the KEK with hardware protection: ceremony kek create.",
        )
    if kty != "RSA-HSM":
        raise RefusedError(f"The KEK {name} is {kty}, not RSA-HSM.", "Use an RSA-HSM KEK.")
    size = public_key_from_jwk(key.key).key_size
    if size not in RSA_SIZES:
        raise RefusedError(
            f"The KEK {name} has {size} bits; Azure takes 2048, 3072 or 4096.",
            "Create a KEK of a supported size.",
        )
    ops = sorted(_value(op) for op in (key.key_operations or ()))
    if ops != list(KEK_OPS):
        raise RefusedError(
            f"The KEK {name} allows {ops or 'no operations'}; a KEK allows exactly ['import'].",
            "Create a dedicated KEK with key_ops ['import'] (ceremony kek create).",
        )
    props = key.properties
    if not props.enabled:
        raise RefusedError(f"The KEK {name} is disabled.", "Enable it or create a new KEK.")
    now = now or datetime.now(UTC)
    if props.not_before and now < props.not_before:
        raise RefusedError(
            f"The KEK {name} is not valid before {_iso(props.not_before)}.",
            "Wait until then or use another KEK.",
        )
    if props.expires_on and now >= props.expires_on:
        raise RefusedError(
            f"The KEK {name} expired at {_iso(props.expires_on)}.", "Create a new KEK."
        )


def kek_from_key(key: KeyVaultKey, vault_url: str, *, now: datetime | None = None) -> Kek:
    """Check a KeyVaultKey as a KEK and describe it."""
    check_kek(key, vault_url, now=now)
    public = public_key_from_jwk(key.key)
    pem = spki_pem(public)
    props = key.properties
    _, name, version = split_key_id(key.id or "")
    return Kek(
        kid=key.id or "",
        vault_url=props.vault_url or vault_url,
        name=name,
        version=version or "",
        size=public.key_size,
        key_ops=tuple(sorted(_value(op) for op in key.key_operations or ())),
        not_before=props.not_before,
        expires_on=props.expires_on,
        created_on=props.created_on,
        public_key_pem=pem.decode(),
        fingerprint=fingerprint_public_key(pem),
    )


def kek_from_file(pem: bytes, vault_url: str, name: str, version: str, where: str) -> Kek:
    """The KEK from its public key carried in as a PEM (`az keyvault key download`).

    Only the key itself can be checked here (RSA, 2048/3072/4096 bits); its key_ops and kty were
    checked by whoever downloaded it, and the fingerprint must be confirmed out of band."""
    public = load_public_key(pem, where)
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size not in RSA_SIZES:
        raise RefusedError(
            f"{where} is not an RSA public key of 2048, 3072 or 4096 bits.",
            "Download the KEK again (az keyvault key download).",
        )
    spki = spki_pem(public)
    return Kek(
        kid=f"{vault_url}/keys/{name}/{version}",
        vault_url=vault_url,
        name=name,
        version=version,
        size=public.key_size,
        key_ops=KEK_OPS,
        not_before=None,
        expires_on=None,
        created_on=None,
        public_key_pem=spki.decode(),
        fingerprint=fingerprint_public_key(spki),
        source="file",
    )


def check_fingerprint(actual: Fingerprint, expected: str | None) -> None:
    """Stop the ceremony when the out-of-band fingerprint differs (hex any case, colons/spaces)."""
    if expected is None:
        return
    wanted = Fingerprint.parse(expected)
    if not actual.matches(wanted):
        raise RefusedError(
            f"The KEK fingerprint {actual.hex} does not match the expected {wanted.hex}.",
            "Stop the ceremony: this is not the KEK you were told about; confirm it out of band.",
        )


def fetch_kek(
    conn: VaultConnection,
    name: str,
    *,
    version: str | None = None,
    expect_fingerprint: str | None = None,
    now: datetime | None = None,
) -> Kek:
    """Fetch a KEK (latest or given version), check it, and compare its fingerprint if given."""
    if expect_fingerprint is not None:
        Fingerprint.parse(expect_fingerprint)  # a malformed value is a usage error, before any call
    client = conn.key_client()
    try:
        with vault_errors(f"fetch the KEK {name}", conn.url):
            key = client.get_key(name, version)
    except ResourceNotFoundError:
        what = f"{name} version {version}" if version else name
        raise VaultError(
            f"The vault {conn.url} has no key {what}.", "Check the name, or create the KEK first."
        ) from None
    kek = kek_from_key(key, conn.url, now=now)
    check_fingerprint(kek.fingerprint, expect_fingerprint)
    return kek


def create_kek(conn: VaultConnection, name: str, *, size: int = 3072) -> Kek:
    """Create a new HSM-backed KEK (key_ops ["import"]); refuse a name already in use."""
    if size not in RSA_SIZES:
        raise UsageError(f"A KEK of {size} bits is not allowed.", "Use 2048, 3072 or 4096.")
    client = conn.key_client()
    try:
        with vault_errors(f"look up the key {name}", conn.url):
            client.get_key(name)
    except ResourceNotFoundError:
        pass
    else:
        raise RefusedError(
            f"The vault {conn.url} already has a key named {name}.",
            "Choose a new KEK name, or fetch the existing KEK with ceremony kek fetch.",
        )
    with vault_errors(f"create the KEK {name}", conn.url):
        key = client.create_rsa_key(
            name, size=size, hardware_protected=True, key_operations=list(KEK_OPS)
        )
    return kek_from_key(key, conn.url)


def kek_json_path(pem_path: Path) -> Path:
    """The record written beside the PEM: kek.pem -> kek.json."""
    return pem_path.with_suffix(".json")


def write_kek(
    kek: Kek, pem_path: Path, *, out_of_band_sha256: str | None = None
) -> tuple[Path, Path]:
    """Write kek.pem and the kek.json evidence record, both create-exclusive; refuse if either
    exists (the PEM first, so a kek.json never names a key whose PEM is missing)."""
    json_path = kek_json_path(pem_path)
    if json_path == pem_path:
        raise UsageError(f"{pem_path} must not end in .json.", "Name the output FILE.pem.")
    refuse_existing(pem_path, json_path)
    write_new(pem_path, kek.public_key_pem.encode())
    write_new(json_path, kek.to_evidence(out_of_band_sha256).to_json())
    return pem_path, json_path
