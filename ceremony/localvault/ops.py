"""localvault.ops: the cryptographic operations a stored key performs for a client.

Owns algorithm choice and checks (digest length, curve, key size) for sign, verify, encrypt,
decrypt, wrapKey and unwrapKey. Never decides whether a key may do an operation (the service does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap,
    aes_key_wrap_with_padding,
)

from ceremony.localvault.errors import bad_parameter
from ceremony.localvault.material import CURVE_NAMES, PrivateKey

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_EC_ALGS = {
    "ES256": ("P-256", "256"),
    "ES384": ("P-384", "384"),
    "ES512": ("P-521", "512"),
    "ES256K": ("P-256K", "256"),
}
_RSA_CIPHERS = ("RSA-OAEP", "RSA-OAEP-256", "RSA1_5")
_AES_KW = {"A128KW": 128, "A192KW": 192, "A256KW": 256}


@dataclass(frozen=True)
class OpResult:
    """The bytes a KeyOperationResult carries back (value plus AES iv/tag/aad when relevant)."""

    value: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None


def _unsupported(alg: str, key: PrivateKey) -> Exception:
    kind = (
        "AES" if isinstance(key, bytes) else "RSA" if isinstance(key, rsa.RSAPrivateKey) else "EC"
    )
    return bad_parameter(f"Algorithm {alg!r} is not supported for this {kind} key.")


def _signature_setup(
    alg: str, key: PrivateKey, digest: bytes
) -> tuple[hashes.HashAlgorithm, asym_padding.AsymmetricPadding | None]:
    """(hash, RSA padding or None) for a JWS algorithm, after checking key and digest fit."""
    if alg[:2] in ("RS", "PS") and isinstance(key, rsa.RSAPrivateKey) and alg[2:] in _HASHES:
        chosen = _HASHES[alg[2:]]()
        pad: asym_padding.AsymmetricPadding | None = (
            asym_padding.PKCS1v15()
            if alg[:2] == "RS"
            else asym_padding.PSS(asym_padding.MGF1(chosen), chosen.digest_size)
        )
    elif alg in _EC_ALGS and isinstance(key, ec.EllipticCurvePrivateKey):
        curve, hash_bits = _EC_ALGS[alg]
        if CURVE_NAMES.get(key.curve.name) != curve:
            raise bad_parameter(f"Algorithm {alg} needs a {curve} key.")
        chosen, pad = _HASHES[hash_bits](), None
    else:
        raise _unsupported(alg, key)
    if len(digest) != chosen.digest_size:
        raise bad_parameter(
            f"{alg} signs a {chosen.digest_size}-byte digest; "
            f"the request carried {len(digest)} bytes."
        )
    return chosen, pad


def _ec_width(key: ec.EllipticCurvePrivateKey) -> int:
    return (key.curve.key_size + 7) // 8


def sign(alg: str, key: PrivateKey, digest: bytes) -> bytes:
    """Sign a precomputed digest; ECDSA signatures come back as raw r||s like Key Vault's."""
    chosen, pad = _signature_setup(alg, key, digest)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, pad, utils.Prehashed(chosen))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(chosen))))
    width = _ec_width(key)
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


def verify(alg: str, key: PrivateKey, digest: bytes, signature: bytes) -> bool:
    """True when `signature` is valid for `digest` under the key's public half."""
    chosen, pad = _signature_setup(alg, key, digest)
    try:
        if isinstance(key, rsa.RSAPrivateKey):
            key.public_key().verify(signature, digest, pad, utils.Prehashed(chosen))
            return True
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        width = _ec_width(key)
        if len(signature) != 2 * width:
            return False
        der = utils.encode_dss_signature(
            int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
        )
        key.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(chosen)))
        return True
    except InvalidSignature:
        return False


def _rsa_padding(alg: str) -> asym_padding.AsymmetricPadding:
    if alg == "RSA-OAEP":
        return asym_padding.OAEP(asym_padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
    if alg == "RSA-OAEP-256":
        return asym_padding.OAEP(asym_padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    return asym_padding.PKCS1v15()


def _aes_key(alg: str, key: PrivateKey, bits: int) -> bytes:
    if not isinstance(key, bytes):
        raise _unsupported(alg, key)
    if len(key) * 8 != bits:
        raise bad_parameter(f"Algorithm {alg} needs a {bits}-bit key; this key has {len(key) * 8}.")
    return key


def _aes_mode(alg: str) -> tuple[int, str] | None:
    """(bits, 'GCM'|'CBC'|'CBCPAD') for an AES content algorithm name, else None."""
    if len(alg) < 7 or alg[0] != "A" or alg[1:4] not in ("128", "192", "256"):
        return None
    mode = alg[4:]
    return (int(alg[1:4]), mode) if mode in ("GCM", "CBC", "CBCPAD") else None


def encrypt(
    alg: str, key: PrivateKey, plaintext: bytes, iv: bytes | None, aad: bytes | None
) -> OpResult:
    """Encrypt one block of data (RSA) or one message (AES-GCM/CBC)."""
    if alg in _RSA_CIPHERS and isinstance(key, rsa.RSAPrivateKey):
        try:
            return OpResult(key.public_key().encrypt(plaintext, _rsa_padding(alg)))
        except ValueError as exc:
            raise bad_parameter(f"The plaintext is too long for {alg} with this key.") from exc
    mode = _aes_mode(alg)
    if mode is None:
        raise _unsupported(alg, key)
    secret = _aes_key(alg, key, mode[0])
    if mode[1] == "GCM":
        nonce = os.urandom(12)
        sealed = AESGCM(secret).encrypt(nonce, plaintext, aad)
        return OpResult(sealed[:-16], iv=nonce, tag=sealed[-16:], aad=aad)
    iv = iv if iv is not None else os.urandom(16)
    if len(iv) != 16:
        raise bad_parameter("AES-CBC needs a 16-byte iv.")
    if mode[1] == "CBCPAD":
        padder = padding.PKCS7(128).padder()
        plaintext = padder.update(plaintext) + padder.finalize()
    elif len(plaintext) % 16:
        raise bad_parameter(f"{alg} encrypts whole 16-byte blocks; use {alg}PAD for other lengths.")
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    return OpResult(encryptor.update(plaintext) + encryptor.finalize(), iv=iv)


def decrypt(
    alg: str,
    key: PrivateKey,
    ciphertext: bytes,
    iv: bytes | None,
    tag: bytes | None,
    aad: bytes | None,
) -> OpResult:
    """Decrypt what `encrypt` (or a client holding the public key) produced."""
    if alg in _RSA_CIPHERS and isinstance(key, rsa.RSAPrivateKey):
        try:
            return OpResult(key.decrypt(ciphertext, _rsa_padding(alg)))
        except ValueError as exc:
            raise bad_parameter(f"The ciphertext could not be decrypted with {alg}.") from exc
    mode = _aes_mode(alg)
    if mode is None:
        raise _unsupported(alg, key)
    secret = _aes_key(alg, key, mode[0])
    if iv is None:
        raise bad_parameter(f"{alg} decryption needs the iv.")
    try:
        if mode[1] == "GCM":
            if tag is None:
                raise bad_parameter(f"{alg} decryption needs the authentication tag.")
            return OpResult(AESGCM(secret).decrypt(iv, ciphertext + tag, aad))
        if len(iv) != 16 or len(ciphertext) % 16:
            raise bad_parameter("AES-CBC needs a 16-byte iv and whole 16-byte blocks.")
        decryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).decryptor()
        plain = decryptor.update(ciphertext) + decryptor.finalize()
        if mode[1] == "CBCPAD":
            unpadder = padding.PKCS7(128).unpadder()
            plain = unpadder.update(plain) + unpadder.finalize()
        return OpResult(plain)
    except (InvalidTag, ValueError) as exc:
        raise bad_parameter(f"The ciphertext could not be decrypted with {alg}.") from exc


def wrap(alg: str, key: PrivateKey, value: bytes) -> bytes:
    """Wrap a key with RSA (OAEP, OAEP-256, PKCS#1 v1.5) or AES Key Wrap (RFC 3394 / RFC 5649)."""
    if alg in _RSA_CIPHERS:
        return encrypt(alg, key, value, None, None).value
    try:
        if alg in _AES_KW:
            return aes_key_wrap(_aes_key(alg, key, _AES_KW[alg]), value)
        if alg == "CKM_AES_KEY_WRAP" and isinstance(key, bytes):
            return aes_key_wrap(key, value)
        if alg == "CKM_AES_KEY_WRAP_PAD" and isinstance(key, bytes):
            return aes_key_wrap_with_padding(key, value)
    except ValueError as exc:
        raise bad_parameter(f"{alg} cannot wrap a value of {len(value)} bytes.") from exc
    raise _unsupported(alg, key)


def unwrap(alg: str, key: PrivateKey, value: bytes) -> bytes:
    """Reverse `wrap`; a tampered or foreign blob is refused."""
    if alg in _RSA_CIPHERS:
        return decrypt(alg, key, value, None, None, None).value
    try:
        if alg in _AES_KW:
            return aes_key_unwrap(_aes_key(alg, key, _AES_KW[alg]), value)
        if alg == "CKM_AES_KEY_WRAP" and isinstance(key, bytes):
            return aes_key_unwrap(key, value)
        if alg == "CKM_AES_KEY_WRAP_PAD" and isinstance(key, bytes):
            return aes_key_unwrap_with_padding(key, value)
    except (InvalidUnwrap, ValueError) as exc:
        raise bad_parameter(f"The wrapped key could not be unwrapped with {alg}.") from exc
    raise _unsupported(alg, key)
