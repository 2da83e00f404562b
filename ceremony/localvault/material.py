"""localvault.material: key material inside the vault: generation, storage form, public JWK.

RSA and EC private keys are held as PKCS#8 DER, AES keys as raw bytes. Never returns private
fields in a JWK: only the public half leaves the vault.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ceremony.localvault.codec import b64url_decode, b64url_encode, bytes_to_int, int_to_bytes
from ceremony.localvault.errors import bad_parameter
from ceremony.localvault.rules import RSA_SIZES, check_curve, check_size

CURVE_CLASSES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "P-256K": ec.SECP256K1,
}
CURVE_NAMES = {cls.name: name for name, cls in CURVE_CLASSES.items()}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | bytes


@dataclass(frozen=True)
class Material:
    """A key's secret in storage form, the usable key, and what a request may check against it."""

    private: PrivateKey
    secret: bytes
    size: int | None
    curve: str | None


def pkcs8(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def describe(private: PrivateKey) -> Material:
    """Storage form and size/curve of a private key object (or raw AES bytes)."""
    if isinstance(private, bytes):
        return Material(private, private, len(private) * 8, None)
    if isinstance(private, rsa.RSAPrivateKey):
        return Material(private, pkcs8(private), private.key_size, None)
    curve = CURVE_NAMES.get(private.curve.name)
    if curve is None:
        raise bad_parameter(f"Curve {private.curve.name} is not supported; use P-256/384/521/256K.")
    return Material(private, pkcs8(private), None, curve)


def generate(family: str, size: int | None, curve: str | None, exponent: int | None) -> Material:
    """Make a new key inside the vault."""
    if family == "RSA":
        size = size or 2048
        check_size("RSA", size)
        if exponent not in (None, 3, 65537):
            raise bad_parameter("public_exponent must be 3 or 65537.")
        return describe(rsa.generate_private_key(exponent or 65537, size))
    if family == "EC":
        if size is not None:
            raise bad_parameter("An EC key takes 'crv', not 'key_size'.")
        curve = curve or "P-256"
        check_curve(curve)
        return describe(ec.generate_private_key(CURVE_CLASSES[curve]()))
    size = size or 256
    check_size("oct", size)
    return describe(os.urandom(size // 8))


def load(family: str, secret: bytes) -> PrivateKey:
    """The usable private key for a stored secret."""
    if family == "oct":
        return secret
    private = serialization.load_der_private_key(secret, password=None)
    assert isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return private


def public_jwk(private: PrivateKey) -> dict[str, Any]:
    """The public JWK fields Key Vault returns: n/e for RSA, crv/x/y for EC, none for AES."""
    if isinstance(private, bytes):
        return {}
    if isinstance(private, rsa.RSAPrivateKey):
        numbers = private.public_key().public_numbers()
        return {
            "n": b64url_encode(int_to_bytes(numbers.n)),
            "e": b64url_encode(int_to_bytes(numbers.e)),
        }
    point = private.public_key().public_numbers()
    width = (private.curve.key_size + 7) // 8
    return {
        "crv": CURVE_NAMES[private.curve.name],
        "x": b64url_encode(int_to_bytes(point.x, width)),
        "y": b64url_encode(int_to_bytes(point.y, width)),
    }


def check_rsa_sizes(modulus_bits: int, numbers: list[int]) -> None:
    """Refuse, before any expensive arithmetic, an RSA key of a size Azure does not import or
    whose other numbers are larger than its modulus."""
    if modulus_bits not in RSA_SIZES:
        raise bad_parameter(
            f"An RSA key of {modulus_bits} bits cannot be imported; use 2048, 3072 or 4096 bits "
            "(never under 2048)."
        )
    if any(number.bit_length() > modulus_bits for number in numbers):
        raise bad_parameter("The RSA key holds a number larger than its modulus.")


def _int_field(jwk: dict[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise bad_parameter(f"key.{name} is required for this key type and must be base64url.")
    try:
        return bytes_to_int(b64url_decode(value))
    except ValueError as exc:
        raise bad_parameter(f"key.{name} is not base64url.") from exc


def from_plain_jwk(family: str, jwk: dict[str, Any]) -> PrivateKey:
    """Build the private key from a plain (non-BYOK) JWK in an import request."""
    try:
        if family == "RSA":
            n, e = _int_field(jwk, "n"), _int_field(jwk, "e")
            fields = {name: _int_field(jwk, name) for name in ("p", "q", "d", "dp", "dq", "qi")}
            # Sizes first: checking a key (primality of p and q) costs the cube of their size.
            check_rsa_sizes(n.bit_length(), [e, *fields.values()])
            private_numbers = rsa.RSAPrivateNumbers(
                p=fields["p"],
                q=fields["q"],
                d=fields["d"],
                dmp1=fields["dp"],
                dmq1=fields["dq"],
                iqmp=fields["qi"],
                public_numbers=rsa.RSAPublicNumbers(e, n),
            )
            return private_numbers.private_key()
        if family == "EC":
            curve = jwk.get("crv")
            if not isinstance(curve, str):
                raise bad_parameter("key.crv is required for an EC key.")
            check_curve(curve)
            private = ec.derive_private_key(_int_field(jwk, "d"), CURVE_CLASSES[curve]())
            point = private.public_key().public_numbers()
            if (_int_field(jwk, "x"), _int_field(jwk, "y")) != (point.x, point.y):
                raise bad_parameter("key.x/key.y do not belong to key.d.")
            return private
    except ValueError as exc:
        raise bad_parameter(f"The key in the request is not a valid {family} key: {exc}") from exc
    k = jwk.get("k")
    if not isinstance(k, str):
        raise bad_parameter("key.k is required for an oct key.")
    try:
        return b64url_decode(k)
    except ValueError as exc:
        raise bad_parameter("key.k is not base64url.") from exc
