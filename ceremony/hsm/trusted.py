"""hsm.trusted: the KEK as the token's trusted wrapping key, installed by the security officer.

Target keys are generated with CKA_WRAP_WITH_TRUSTED, so the token wraps them only under a key
whose CKA_TRUSTED is true, and only the security officer can set that: code holding the user PIN
cannot export a ceremony key under a key of its own. Never keeps or returns the SO PIN.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.util import biginteger

from ceremony.errors import HsmError
from ceremony.hsm.kek import KekPublicKey
from ceremony.hsm.module import find_token, hsm_step


@dataclass(frozen=True)
class TrustedKek:
    """The KEK's token object: its label and CKA_ID, and whether this call installed it."""

    label: str
    id_hex: str
    installed_now: bool


def trusted_kek_id(kek: KekPublicKey) -> bytes:
    """The CKA_ID of the KEK's trusted object: the first 16 bytes of its SPKI's SHA-256."""
    return hashlib.sha256(kek.spki_der).digest()[:16]


def install_trusted_kek(
    module_path: str, token_label: str, so_pin: str, kek: KekPublicKey, label: str
) -> TrustedKek:
    """Log in as the security officer and make the KEK a trusted, wrap-only token object (once:
    an object this KEK already has is kept, one with its CKA_ID but another key is refused)."""
    token = find_token(module_path, token_label)
    key_id = trusted_kek_id(kek)
    with hsm_step(f"Logging in to token {token.label!r} as the security officer"):
        session = token.open(rw=True, so_pin=so_pin)
    try:
        existing = _public_keys(session, key_id)
        if existing:
            _require_same(existing[0], kek, label)
            return TrustedKek(label, key_id.hex(), installed_now=False)
        with hsm_step("Installing the KEK as the token's trusted wrapping key"):
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                    Attribute.KEY_TYPE: KeyType.RSA,
                    Attribute.MODULUS: biginteger(kek.modulus),
                    Attribute.PUBLIC_EXPONENT: biginteger(kek.exponent),
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.TRUSTED: True,
                    Attribute.WRAP: True,
                    Attribute.ENCRYPT: False,
                    Attribute.VERIFY: False,
                    Attribute.MODIFIABLE: False,
                    Attribute.LABEL: label,
                    Attribute.ID: key_id,
                }
            )
        return TrustedKek(label, key_id.hex(), installed_now=True)
    finally:
        with suppress(PKCS11Error):
            session.close()


def find_trusted_kek(session: Any, kek: KekPublicKey) -> Any:
    """The KEK's trusted token object, for a user session to wrap with; refuses when absent."""
    found = _public_keys(session, trusted_kek_id(kek))
    if not found:
        raise HsmError(
            "The token holds no trusted object for this KEK, so it will wrap no ceremony key.",
            "Run phase 03 again: its first step has the security officer install the KEK.",
        )
    _require_same(found[0], kek, "the trusted KEK")
    return found[0]


def _public_keys(session: Any, key_id: bytes) -> list[Any]:
    with hsm_step("Looking for the trusted KEK on the token"):
        return list(
            session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id})
        )


def _require_same(found: Any, kek: KekPublicKey, label: str) -> None:
    with hsm_step("Reading the trusted KEK's attributes"):
        modulus = int.from_bytes(found[Attribute.MODULUS], "big")
        trusted = bool(found[Attribute.TRUSTED])
    if modulus != kek.modulus or not trusted:
        raise HsmError(
            f"The token holds an object with {label}'s CKA_ID that is not the trusted KEK.",
            "Have the security officer remove it; never wrap under a key nobody vouched for.",
        )
