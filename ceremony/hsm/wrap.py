"""hsm.wrap: CKM_RSA_AES_KEY_WRAP inside the HSM (native, or in two steps), and the AES
proof-of-possession challenges.

Owns the ephemeral AES key's whole life (made, used, destroyed); the target key never leaves the
HSM in plaintext and no key value is ever returned, only wrapped blobs.
"""

from __future__ import annotations

from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from ceremony.errors import HsmError
from ceremony.hsm.kek import KekPublicKey
from ceremony.hsm.keys import private_or_secret
from ceremony.hsm.mechanisms import CKM_RSA_AES_KEY_WRAP, OAEP_SHA1, RsaAesWrapParam, as_mechanism
from ceremony.hsm.module import hsm_step
from ceremony.hsm.selftest import WrapSelfTest, import_rsa_public
from ceremony.wrap_paths import NATIVE

# The ephemeral key: a session object that can only wrap, extractable only to be wrapped itself.
_EPHEMERAL_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: True,
}


def import_kek(session: Any, kek: KekPublicKey) -> Any:
    """The KEK public key as a session object with CKA_WRAP."""
    with hsm_step("Importing the KEK public key into the HSM"):
        return import_rsa_public(session, kek.modulus, kek.exponent)


def wrap_target(
    session: Any,
    kek_object: Any,
    kek: KekPublicKey,
    target: Any,
    label: str,
    self_test: WrapSelfTest,
) -> bytes:
    """RSA-OAEP(KEK, ephemeral AES-256) || RFC 5649(ephemeral, target), per Azure's spec."""
    if self_test.path is None:
        raise HsmError("The wrap self-test found no usable mechanism.", "Run the self-test first.")
    with hsm_step(f"Checking key {label!r} can be wrapped"):
        extractable = bool(target[Attribute.EXTRACTABLE])
    if not extractable:
        raise HsmError(
            f"Key {label!r} is not extractable, so the HSM cannot wrap it.",
            "Generate the key with this tool (it sets CKA_EXTRACTABLE) or let the SO change it.",
        )
    if self_test.path == NATIVE:
        param = RsaAesWrapParam()
        with hsm_step(f"Wrapping {label!r} with CKM_RSA_AES_KEY_WRAP"):
            blob = kek_object.wrap_key(
                target, mechanism=as_mechanism(CKM_RSA_AES_KEY_WRAP), mechanism_param=param.raw
            )
    else:
        assert self_test.mechanism_code is not None, "a two-step path has its AES mechanism"
        blob = _two_step(session, kek_object, target, label, self_test.mechanism_code)
    if len(blob) < kek.bits // 8 + 16:
        raise HsmError(f"The HSM returned a {len(blob)}-byte wrap; too short.", "Report this.")
    return blob


def _two_step(session: Any, kek_object: Any, target: Any, label: str, aes_wrap: int) -> bytes:
    with hsm_step("Generating the ephemeral AES-256 key in the HSM"):
        ephemeral = session.generate_key(
            KeyType.AES,
            256,
            store=False,
            capabilities=MechanismFlag.WRAP,
            template=_EPHEMERAL_TEMPLATE,
        )
    try:
        with hsm_step(f"Wrapping {label!r} under the ephemeral key"):
            wrapped_target = ephemeral.wrap_key(target, mechanism=Mechanism(aes_wrap))
        with hsm_step("Wrapping the ephemeral key under the KEK (RSA-OAEP SHA-1)"):
            wrapped_ephemeral = kek_object.wrap_key(
                ephemeral, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=OAEP_SHA1
            )
    finally:
        with hsm_step("Destroying the ephemeral AES key"):
            ephemeral.destroy()
    return wrapped_ephemeral + wrapped_target


def wrap_challenge(session: Any, label: str, challenge: bytes) -> bytes:
    """AES key `label` wraps `challenge` with CKM_AES_KEY_WRAP (RFC 3394, what A*KW unwraps).

    The challenge enters the HSM as a session generic secret (non-sensitive, extractable) that is
    destroyed right after; it is a random value chosen for the proof, not a ceremony secret.
    """
    if len(challenge) < 16 or len(challenge) % 8:
        raise HsmError(
            f"A {len(challenge)}-byte challenge cannot be wrapped with RFC 3394.",
            "Use 16 or more random bytes, a multiple of 8 (the ceremony uses 32).",
        )
    key = _aes_key(session, label)
    with hsm_step("Importing the challenge as a session object"):
        value = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.VALUE: challenge,
                Attribute.TOKEN: False,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
            }
        )
    try:
        with hsm_step(f"Wrapping the challenge with {label!r} (CKM_AES_KEY_WRAP)"):
            return bytes(key.wrap_key(value, mechanism=Mechanism.AES_KEY_WRAP))
    finally:
        with hsm_step("Destroying the challenge object"):
            value.destroy()


def _aes_key(session: Any, label: str) -> Any:
    key = private_or_secret(session, label)
    with hsm_step(f"Checking {label!r} is an AES key"):
        key_type = key[Attribute.KEY_TYPE]
    if key_type != KeyType.AES:
        raise HsmError(f"Key {label!r} is not an AES key.", "Give the label of an AES key.")
    return key
