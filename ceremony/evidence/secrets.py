"""secrets: find anything that must never leave the HSM or the operator's head in evidence.

Scans bytes, directory trees and tar archives for private keys (PEM, PKCS#8, PKCS#1, SEC1 DER, also
base64-wrapped), JWKs with private members, HSM token stores and given PINs or secret bytes.
Only reports where a secret is; never prints or returns the secret itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_der_private_key

from ceremony.errors import RefusedError

_PEM_PRIVATE = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
# DER starts of PrivateKeyInfo (version 0, AlgorithmIdentifier), RSAPrivateKey (version 0, modulus)
# and SEC1 ECPrivateKey (version 1, OCTET STRING): long, short and one-byte length forms.
_DER_PRIVATE = re.compile(
    rb"\x30(?:\x82..|\x81.|[\x00-\x7f])\x02\x01(?:\x00[\x30\x02]|\x01\x04)", re.DOTALL
)
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_\-]{88,}={0,2}")
_JWK_PRIVATE_MEMBER = re.compile(rb'\\?"(?:d|k|p|q|dp|dq|qi)\\?"\s*:\s*\\?"[A-Za-z0-9_\-]{16,}')
_JWK_KTY = re.compile(rb'\\?"kty\\?"\s*:')
_SECRET_FIELD = re.compile(
    r"^(?:.*_)?(?:pin|password|passphrase|secret|private_key|privatekey)$", re.IGNORECASE
)
# Names of the files a SoftHSM2 token directory holds: an HSM's key store is never evidence.
_TOKEN_STORE_NAMES = ("token.object", "sqlite3.db")


@dataclass(frozen=True)
class SecretFinding:
    """Where a secret was found and what kind it is (never the secret itself)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def scan_bytes(data: bytes, known_secrets: Iterable[bytes | str] = ()) -> str | None:
    """Reason why `data` holds a secret, or None when nothing was found."""
    if _PEM_PRIVATE.search(data):
        return "a PEM private key block"
    if _holds_der_private_key(data):
        return "a DER private key (PKCS#8, PKCS#1 or SEC1)"
    for match in _BASE64_RUN.finditer(data):
        decoded = _decode_base64(match.group())
        if decoded and (_PEM_PRIVATE.search(decoded) or _holds_der_private_key(decoded)):
            return "a base64-encoded private key"
    if _JWK_KTY.search(data) and _JWK_PRIVATE_MEMBER.search(data):
        return "a JWK with private key members"
    for number, secret in enumerate(known_secrets, start=1):
        if _contains_secret(data, secret):
            return f"known secret #{number} (a PIN or secret value given to the scan)"
    return None


def secret_field(value: Any, where: str = "data") -> str | None:
    """Name of the first field whose name says it holds a secret (pin, password, ...)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if _SECRET_FIELD.match(str(key)):
                return f"{where}.{key}"
            found = secret_field(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = secret_field(item, f"{where}[{index}]")
            if found:
                return found
    return None


def scan_tree(root: Path, known_secrets: Iterable[bytes | str] = ()) -> list[SecretFinding]:
    """Every file under `root` (hidden ones too) that holds a secret."""
    secrets = list(known_secrets)
    findings = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        reason = _scan_named(name, path.read_bytes(), secrets)
        if reason:
            findings.append(SecretFinding(name, reason))
    return findings


def scan_files(
    files: Mapping[str, bytes], known_secrets: Iterable[bytes | str] = ()
) -> list[SecretFinding]:
    """Every file of a name -> content mapping that holds a secret."""
    secrets = list(known_secrets)
    findings = []
    for name, data in sorted(files.items()):
        reason = _scan_named(name, data, secrets)
        if reason:
            findings.append(SecretFinding(name, reason))
    return findings


def scan_archive(archive: Path, known_secrets: Iterable[bytes | str] = ()) -> list[SecretFinding]:
    """Every member of the tar `archive` that holds a secret."""
    secrets = list(known_secrets)
    findings = []
    for name, data in _tar_files(archive):
        reason = _scan_named(name, data, secrets)
        if reason:
            findings.append(SecretFinding(name, reason))
    return findings


def require_no_secrets(findings: list[SecretFinding]) -> None:
    """Refuse to seal when the scan found anything."""
    if findings:
        listed = "; ".join(str(f) for f in findings[:5])
        raise RefusedError(
            f"Refusing to seal: {len(findings)} file(s) hold secrets ({listed}).",
            "Remove those files or the secret from them; evidence must hold only public data.",
        )


def _scan_named(name: str, data: bytes, secrets: list[bytes | str]) -> str | None:
    if name.rsplit("/", 1)[-1] in _TOKEN_STORE_NAMES or name.endswith(".object"):
        return "an HSM token store file"
    return scan_bytes(data, secrets)


def _tar_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """Members as far as they can be read: a damaged archive is scanned up to the damage
    (the verifier reports the damage itself)."""
    with tarfile.open(archive, "r:") as tar:
        while True:
            try:
                member = tar.next()
                if member is None:
                    return
                handle = tar.extractfile(member) if member.isfile() else None
                data = handle.read() if handle is not None else None
            except tarfile.TarError:
                return
            if data is not None:
                yield member.name, data


def _holds_der_private_key(data: bytes) -> bool:
    for match in _DER_PRIVATE.finditer(data):
        start = match.start()
        length = _der_total_length(data, start)
        if length and start + length <= len(data):
            try:
                load_der_private_key(data[start : start + length], password=None)
            except (ValueError, TypeError):
                continue
            return True
    return False


def _der_total_length(data: bytes, start: int) -> int | None:
    first = data[start + 1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count not in (1, 2) or start + 2 + count > len(data):
        return None
    return 2 + count + int.from_bytes(data[start + 2 : start + 2 + count], "big")


def _decode_base64(run: bytes) -> bytes | None:
    text = run.rstrip(b"=")
    padded = text + b"=" * (-len(text) % 4)
    try:
        if b"-" in text or b"_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded)
    except (binascii.Error, ValueError):
        return None


def _contains_secret(data: bytes, secret: bytes | str) -> bool:
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not raw:
        return False
    forms = [raw]
    if isinstance(secret, bytes) and len(raw) >= 16:
        # Secret key bytes also travel as hex or base64 text.
        forms += [
            raw.hex().encode(),
            raw.hex().upper().encode(),
            base64.b64encode(raw).rstrip(b"="),
            base64.urlsafe_b64encode(raw).rstrip(b"="),
        ]
    for form in forms:
        pattern = re.escape(form)
        if isinstance(secret, str):
            # A PIN counts only as a whole token, so "1234" is not found inside a digest.
            pattern = rb"(?<![A-Za-z0-9])" + pattern + rb"(?![A-Za-z0-9])"
        if re.search(pattern, data):
            return True
    return False


def json_value_has_secret(value: Any) -> str | None:
    """Why a JSON value about to be recorded looks secret, or None (used by the transcript)."""
    field = secret_field(value)
    if field:
        return f"field {field} is named like a secret"
    return scan_bytes(json.dumps(value, sort_keys=True).encode("utf-8"))
