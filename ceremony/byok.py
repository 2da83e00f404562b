"""byok: the .byok file Azure imports and the versioned KEK id it names: build, parse, check.

Pure functions over bytes and strings: no I/O, no HSM, no network, no key material beyond the
ciphertext it carries.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

from ceremony import TOOL_NAME, __version__
from ceremony.errors import ByokFormatError

SCHEMA_VERSION = "1.0.0"
ALG = "dir"
ENC = "CKM_RSA_AES_KEY_WRAP"
KEK_BLOCK_SIZES = (256, 384, 512)  # RSA-OAEP output for a 2048/3072/4096-bit KEK
_MIN_AES_WRAP = 16  # RFC 5649 output: at least two 64-bit blocks

# Key Vault and Managed HSM DNS suffixes of the public and sovereign clouds.
_AZURE_SUFFIXES = (
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".managedhsm.azure.net",
    ".managedhsm.azure.cn",
    ".managedhsm.usgovcloudapi.net",
)
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_AZURE_VERSION = re.compile(r"[0-9a-fA-F]{32}")
_LOCAL_VERSION = re.compile(r"[0-9A-Za-z]{1,64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class KekId:
    """A versioned KEK identifier split into vault URL, key name and version."""

    vault_url: str
    name: str
    version: str

    @property
    def kid(self) -> str:
        return f"{self.vault_url}/keys/{self.name}/{self.version}"


def parse_kid(kid: str) -> KekId:
    """Split a versioned Key Vault / Managed HSM key URL; refuse anything else.

    Accepts https://<vault>.vault.azure.net/keys/<name>/<version> (and Managed HSM and
    sovereign-cloud hosts), or https://127.0.0.1:<port>/… and https://localhost:<port>/… for
    the local rehearsal vault.
    """
    remedy = "Give the KEK's full versioned kid: https://<vault>/keys/<name>/<version>."
    if not isinstance(kid, str) or not kid:
        raise ByokFormatError("The KEK kid is empty.", remedy)
    parts = urlsplit(kid)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or parts.query or parts.fragment or parts.username:
        raise ByokFormatError(f"The KEK kid {kid!r} is not a plain https URL.", remedy)
    try:
        port = parts.port
    except ValueError as exc:
        raise ByokFormatError(f"The KEK kid {kid!r} has an invalid port.", remedy) from exc
    local = host in _LOCAL_HOSTS
    if local and port is None:
        raise ByokFormatError(f"The local vault kid {kid!r} has no port.", remedy)
    if not local and (not host.endswith(_AZURE_SUFFIXES) or port not in (None, 443)):
        raise ByokFormatError(
            f"The KEK kid {kid!r} is not on a Key Vault or Managed HSM host.", remedy
        )
    segments = parts.path.split("/")
    if (
        len(segments) != 4
        or segments[0]
        or segments[1] != "keys"
        or not _NAME.fullmatch(segments[2])
    ):
        raise ByokFormatError(f"The KEK kid {kid!r} is not a /keys/<name>/<version> URL.", remedy)
    version = segments[3]
    pattern = _LOCAL_VERSION if local else _AZURE_VERSION
    if not pattern.fullmatch(version):
        what = "has no version" if not version else f"has an invalid version {version!r}"
        raise ByokFormatError(f"The KEK kid {kid!r} {what}.", remedy)
    netloc = host if port is None else f"{host}:{port}"
    return KekId(f"https://{netloc}", segments[2], version)


def generator_text(manufacturer: str, model: str, firmware: str) -> str:
    """The `generator` field: this tool and version; the source HSM and its firmware."""
    return f"{TOOL_NAME} {__version__}; {manufacturer} {model} firmware {firmware}"


@dataclass(frozen=True)
class ByokPackage:
    """A .byok package: the KEK it is for, the CKM_RSA_AES_KEY_WRAP ciphertext, who made it."""

    kid: str
    ciphertext: bytes
    generator: str

    def to_bytes(self) -> bytes:
        """The .byok file's bytes, fields in the order Azure's specification shows them."""
        document = {
            "schema_version": SCHEMA_VERSION,
            "header": {"kid": self.kid, "alg": ALG, "enc": ENC},
            "ciphertext": b64url_encode(self.ciphertext),
            "generator": self.generator,
        }
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    def check(self, kek_bits: int | None = None) -> None:
        """Validate every field; with the KEK size, also the RSA block's length."""
        parse_kid(self.kid)
        _check_ciphertext(self.ciphertext, kek_bits)
        if not isinstance(self.generator, str) or not self.generator.strip():
            raise ByokFormatError("The .byok field 'generator' is empty.", "Name the tool and HSM.")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_byok(data: bytes, kek_bits: int | None = None) -> ByokPackage:
    """Parse and validate a .byok file; refuse anything malformed, naming the field."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ByokFormatError(
            f"The .byok file is not UTF-8 JSON ({exc}).", "Use the file the HSM side wrote."
        ) from exc
    _expect_object(document, "(top level)", {"schema_version", "header", "ciphertext", "generator"})
    if document["schema_version"] != SCHEMA_VERSION:
        _bad("schema_version", f"must be {SCHEMA_VERSION!r}, not {document['schema_version']!r}")
    header = document["header"]
    _expect_object(header, "header", {"kid", "alg", "enc"})
    if header["alg"] != ALG:
        _bad("header.alg", f"must be {ALG!r}, not {header['alg']!r}")
    if header["enc"] != ENC:
        _bad("header.enc", f"must be {ENC!r}, not {header['enc']!r}")
    if not isinstance(header["kid"], str):
        _bad("header.kid", "must be a string")
    ciphertext = _b64url_decode(document["ciphertext"])
    if not isinstance(document["generator"], str):
        _bad("generator", "must be a string")
    package = ByokPackage(header["kid"], ciphertext, document["generator"])
    package.check(kek_bits)
    return package


def _expect_object(value: object, where: str, fields: set[str]) -> None:
    if not isinstance(value, dict):
        _bad(where, "must be a JSON object")
    missing = sorted(fields - value.keys())
    if missing:
        _bad(missing[0], "is missing" + ("" if where == "(top level)" else f" from {where}"))
    unknown = sorted(value.keys() - fields)
    if unknown:
        _bad(unknown[0], f"is not part of the .byok format ({where})")


def _b64url_decode(text: object) -> bytes:
    if not isinstance(text, str) or not text:
        _bad("ciphertext", "must be a non-empty base64url string")
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        _bad("ciphertext", "is not unpadded base64url (A-Z a-z 0-9 - _, no '=')")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_ciphertext(ciphertext: bytes, kek_bits: int | None) -> None:
    sizes = KEK_BLOCK_SIZES if kek_bits is None else (kek_bits // 8,)
    if kek_bits is not None and kek_bits // 8 not in KEK_BLOCK_SIZES:
        _bad("ciphertext", f"cannot be for a {kek_bits}-bit KEK (Azure's KEK is 2048-4096 bits)")
    if not any(_fits(len(ciphertext), size) for size in sizes):
        expected = (
            f"a {sizes[0]}-byte RSA block" if kek_bits else "an RSA block of 256/384/512 bytes"
        )
        _bad(
            "ciphertext",
            f"has {len(ciphertext)} bytes, which is not {expected} followed by an RFC 5649 wrap",
        )


def _fits(length: int, rsa_block: int) -> bool:
    rest = length - rsa_block
    return rest >= _MIN_AES_WRAP and rest % 8 == 0


def _bad(field: str, problem: str) -> NoReturn:
    raise ByokFormatError(
        f"The .byok field {field!r} {problem}.",
        "Rebuild the package with `ceremony byok`; do not edit .byok files by hand.",
    )
