"""localvault.byok_import: opens a BYOK package the way the cloud HSM does, independently of ours.

Owns parsing the .byok JSON, the CKM_RSA_AES_KEY_WRAP unwrap and the PKCS#8/raw-AES checks. It
must never share code with ceremony.byok or ceremony.hsm: it is the independent check on them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from ceremony.localvault.codec import b64url_decode
from ceremony.localvault.errors import bad_parameter
from ceremony.localvault.material import PrivateKey, check_rsa_sizes

log = logging.getLogger("ceremony.localvault")

SOFTHSM_PADDING = "SoftHSM2 2.6 RFC 5649 zero-padding deviation"
# An RSA-4096 PrivateKeyInfo is about 2,350 bytes; nothing Azure imports is larger.
MAX_PKCS8 = 3000


@dataclass(frozen=True)
class Package:
    """The parts of a .byok file the vault acts on."""

    kek_kid: str
    ciphertext: bytes


def read_package(key_hsm: bytes) -> Package:
    """Parse the .byok JSON carried in `key_hsm`; name the field that is wrong."""
    try:
        document = json.loads(key_hsm)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_parameter("key.key_hsm does not hold a .byok JSON document.") from exc
    if not isinstance(document, dict):
        raise bad_parameter("key.key_hsm does not hold a .byok JSON object.")
    header = document.get("header")
    if not isinstance(header, dict):
        raise bad_parameter("The .byok package has no 'header' object.")
    for field, expected in (("alg", "dir"), ("enc", "CKM_RSA_AES_KEY_WRAP")):
        if header.get(field) != expected:
            raise bad_parameter(f"The .byok header.{field} must be {expected!r}.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise bad_parameter("The .byok header.kid (the KEK identifier) is missing.")
    ciphertext = document.get("ciphertext")
    if not isinstance(ciphertext, str):
        raise bad_parameter("The .byok package has no 'ciphertext' string.")
    try:
        return Package(kid, b64url_decode(ciphertext))
    except ValueError as exc:
        raise bad_parameter("The .byok ciphertext is not base64url.") from exc


def unwrap(kek: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes:
    """CKM_RSA_AES_KEY_WRAP in reverse: RSA-OAEP(SHA-1) opens the AES key, RFC 5649 the target."""
    split = kek.key_size // 8
    if len(ciphertext) <= split:
        raise bad_parameter("The .byok ciphertext is too short for this KEK.")
    oaep = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
    try:
        transport_key = kek.decrypt(ciphertext[:split], oaep)
    except ValueError as exc:
        raise bad_parameter(
            "The .byok ciphertext cannot be decrypted with the KEK: it was wrapped for another "
            "key or altered."
        ) from exc
    if len(transport_key) != 32:
        raise bad_parameter("The .byok transport key is not an AES-256 key.")
    try:
        return aes_key_unwrap_with_padding(transport_key, ciphertext[split:])
    except InvalidUnwrap as exc:
        raise bad_parameter("The .byok wrapped key fails its RFC 5649 integrity check.") from exc


def _der_length(data: bytes) -> int:
    """Total length of the DER SEQUENCE at the start of `data`."""
    if len(data) < 2 or data[0] != 0x30:
        raise ValueError("not a DER SEQUENCE")
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 4 or len(data) < 2 + count:
        raise ValueError("bad DER length")
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _looks_like_pkcs8(der: bytes) -> bool:
    """PrivateKeyInfo starts with version INTEGER 0 or 1, then the AlgorithmIdentifier SEQUENCE."""
    header = 2 + (der[1] & 0x7F if der[1] >= 0x80 else 0)
    start = der[header : header + 4]
    return len(start) == 4 and start[:2] == b"\x02\x01" and start[2] in (0, 1) and start[3] == 0x30


def parse_private_key(
    payload: bytes, context: str, *, strict: bool = False
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """PKCS#8 PrivateKeyInfo. A rehearsal vault tolerates the SoftHSM2 2.6 zero padding with a
    warning; a `strict` one refuses it, as Azure does."""
    try:
        length = _der_length(payload)
    except ValueError as exc:
        raise bad_parameter("The unwrapped key is not a PKCS#8 PrivateKeyInfo.") from exc
    der, trailing = payload[:length], payload[length:]
    if length > len(payload) or len(der) < 8 or not _looks_like_pkcs8(der):
        raise bad_parameter("The unwrapped key is not a PKCS#8 PrivateKeyInfo.")
    if trailing:
        zero_padded = len(trailing) <= 7 and not len(payload) % 8 and not trailing.strip(b"\0")
        if strict and zero_padded:
            raise bad_parameter(
                f"The unwrapped PKCS#8 key is followed by {len(trailing)} zero bytes: it was "
                "zero-padded before RFC 5649 wrapping (SoftHSM2 2.6's deviation), which Azure "
                "refuses; wrap it with a conformant HSM."
            )
        if not zero_padded:
            raise bad_parameter(
                f"The unwrapped PKCS#8 key is followed by {len(trailing)} unexpected bytes."
            )
        log.warning(
            "%s: the unwrapped PKCS#8 key is followed by %d zero bytes (%s); accepted.",
            context,
            len(trailing),
            SOFTHSM_PADDING,
        )
    if len(der) > MAX_PKCS8:
        raise bad_parameter(
            f"The unwrapped key is {len(der)} bytes, more than any key Azure imports (RSA-4096)."
        )
    try:
        # Parsed unchecked first: checking an RSA key costs the cube of its numbers' size, so
        # the sizes are refused before the full check runs.
        private = serialization.load_der_private_key(
            der, password=None, unsafe_skip_rsa_key_validation=True
        )
        if isinstance(private, rsa.RSAPrivateKey):
            numbers = private.private_numbers()
            check_rsa_sizes(private.key_size, [numbers.p, numbers.q, numbers.d])
            private = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise bad_parameter("The unwrapped PKCS#8 key cannot be parsed.") from exc
    if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise bad_parameter("The unwrapped key is neither RSA nor EC.")
    return private


def open_target(family: str, payload: bytes, context: str, *, strict: bool = False) -> PrivateKey:
    """The target key in the unwrapped payload: PKCS#8 for RSA/EC, raw bytes for AES.
    `strict`: no rehearsal allowance (see parse_private_key)."""
    if family == "oct":
        if len(payload) not in (16, 24, 32):
            raise bad_parameter(
                f"The unwrapped AES key is {len(payload)} bytes; an AES key is 16, 24 or 32 bytes."
            )
        return payload
    private = parse_private_key(payload, context, strict=strict)
    wanted = rsa.RSAPrivateKey if family == "RSA" else ec.EllipticCurvePrivateKey
    if not isinstance(private, wanted):
        found = "an RSA" if isinstance(private, rsa.RSAPrivateKey) else "an EC"
        raise bad_parameter(f"The request says kty {family}-HSM but the package holds {found} key.")
    return private
