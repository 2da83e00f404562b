"""publickey: RSA and EC public keys read from PEM, DER or a vault's JWK, and written as SPKI.

Pure functions; the PEM is byte-identical to `az keyvault key download`. Never sees private
material: a JWK from the vault carries none, and loading refuses anything but a public key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ceremony.errors import UsageError, VaultError

if TYPE_CHECKING:
    from azure.keyvault.keys import JsonWebKey

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "P-256K": ec.SECP256K1,
}


def _int(value: bytes | None, what: str) -> int:
    if not value:
        raise VaultError(f"The vault returned a key without {what}.", "Check the vault's answer.")
    return int.from_bytes(value, "big")


def public_key_from_jwk(jwk: JsonWebKey) -> PublicKey:
    """Rebuild the RSA or EC public key the vault describes; refuse a symmetric or unknown kty."""
    kty = str(getattr(jwk.kty, "value", jwk.kty))
    if kty in ("RSA", "RSA-HSM"):
        return rsa.RSAPublicNumbers(_int(jwk.e, "e"), _int(jwk.n, "n")).public_key()
    if kty in ("EC", "EC-HSM"):
        crv = str(getattr(jwk.crv, "value", jwk.crv))
        if crv not in CURVES:
            raise VaultError(f"The vault returned an EC key on unknown curve {crv!r}.", "")
        x, y = _int(jwk.x, "x"), _int(jwk.y, "y")
        return ec.EllipticCurvePublicNumbers(x, y, CURVES[crv]()).public_key()
    raise VaultError(f"A {kty} key has no public half.", "Compare oct keys by a wrap round trip.")


def spki_der(key: PublicKeyTypes) -> bytes:
    """SubjectPublicKeyInfo DER: the bytes a fingerprint is taken over."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_pem(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM ('PUBLIC KEY'), as `az keyvault key download` writes it."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_any_public_key(
    data: bytes | str,
    source: str = "public key",
    remedy: str = "Give the keys/<name>.pub.pem file the HSM phase wrote.",
) -> PublicKeyTypes:
    """Read a public key of any type from SubjectPublicKeyInfo PEM or DER; refuse anything else."""
    data = data.encode() if isinstance(data, str) else bytes(data)
    try:
        if data.lstrip().startswith(b"-----"):
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        raise UsageError(
            f"The {source} is not a public key in PEM or DER SubjectPublicKeyInfo form.", remedy
        ) from None


def load_public_key(
    data: bytes | str,
    source: str = "public key",
    remedy: str = "Give the keys/<name>.pub.pem file the HSM phase wrote.",
) -> PublicKey:
    """Read an RSA or EC public key (the kinds Azure imports) from SPKI PEM or DER."""
    key = load_any_public_key(data, source, remedy)
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise UsageError(f"The {source} is neither RSA nor EC.", "Give an RSA or EC public key.")
    return key


def curve_name(key: ec.EllipticCurvePublicKey) -> str:
    """The JOSE curve name (P-256 ...) of a pyca curve."""
    for name, curve in CURVES.items():
        if isinstance(key.curve, curve):
            return name
    raise UsageError(
        f"Curve {key.curve.name} cannot live in Azure.", "Use P-256/P-384/P-521/P-256K."
    )


def describe_public_key(key: PublicKey) -> dict[str, object]:
    """The comparable public numbers: RSA n/e (hex), EC crv/x/y (hex)."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"kty": "RSA", "size": key.key_size, "n": f"{numbers.n:x}", "e": numbers.e}
    point = key.public_numbers()
    return {"kty": "EC", "crv": curve_name(key), "x": f"{point.x:x}", "y": f"{point.y:x}"}
