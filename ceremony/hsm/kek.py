"""hsm.kek: the key exchange key's public half, read from the PEM or DER `az` downloads.

Owns parsing and the RSA/size checks; never holds or asks for a private key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from ceremony.errors import UsageError
from ceremony.publickey import load_public_key, spki_der

MIN_KEK_BITS = 2048


@dataclass(frozen=True)
class KekPublicKey:
    """An RSA KEK public key: what the HSM needs (modulus, exponent) and its DER SPKI."""

    modulus: int
    exponent: int
    bits: int
    spki_der: bytes


def load_kek(data: bytes) -> KekPublicKey:
    """Parse a SubjectPublicKeyInfo (PEM or DER); refuse anything but RSA of 2048 bits or more."""
    key = load_public_key(
        data, "KEK file", "Use the file written by `az keyvault key download` for the KEK."
    )
    if not isinstance(key, rsa.RSAPublicKey):
        raise UsageError(
            "The KEK is not an RSA public key; Azure's KEK is always RSA-HSM.",
            "Download the RSA-HSM key created with key_ops import as the KEK.",
        )
    if key.key_size < MIN_KEK_BITS:
        raise UsageError(
            f"The KEK has {key.key_size} bits; Azure's KEK has 2048, 3072 or 4096.",
            "Create the KEK as RSA-HSM 2048, 3072 or 4096 with key_ops import.",
        )
    numbers = key.public_numbers()
    return KekPublicKey(numbers.n, numbers.e, key.key_size, spki_der(key))
