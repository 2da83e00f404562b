"""BYOK import into the local vault through the real Azure SDK, packages built independently.

Every package here is made with pyca/cryptography (or by SoftHSM2 through ceremony.hsm), never by
the vault's own code; every refusal Azure makes is checked, with the vault's state left untouched.
"""

from __future__ import annotations

import hashlib
import logging
import os

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import JsonWebKey, KeyReleasePolicy
from azure.keyvault.keys.crypto import EncryptionAlgorithm, KeyWrapAlgorithm, SignatureAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from ceremony.localvault.byok_import import SOFTHSM_PADDING
from tests.fixtures_localvault import byok_ciphertext, byok_file, kek_public_key

CURVES = {
    "P-256": (ec.SECP256R1, hashes.SHA256, SignatureAlgorithm.es256),
    "P-384": (ec.SECP384R1, hashes.SHA384, SignatureAlgorithm.es384),
    "P-521": (ec.SECP521R1, hashes.SHA512, SignatureAlgorithm.es512),
    "P-256K": (ec.SECP256K1, hashes.SHA256, SignatureAlgorithm.es256_k),
}


def pkcs8(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def kv(local_vault):
    return local_vault.key_client()


@pytest.fixture(scope="module")
def mhsm(local_managed_hsm):
    return local_managed_hsm.key_client()


@pytest.fixture(scope="module")
def kv_kek(kv):
    return kv.create_rsa_key("kek", size=2048, hardware_protected=True, key_operations=["import"])


@pytest.fixture(scope="module")
def mhsm_kek(mhsm):
    return mhsm.create_rsa_key("kek", size=3072, hardware_protected=True, key_operations=["import"])


def package(kek, payload: bytes, kid: str | None = None) -> bytes:
    """A .byok file wrapping `payload` for `kek` (a KeyVaultKey)."""
    return byok_file(kid or kek.id, byok_ciphertext(kek_public_key(kek), payload))


def do_import(client, name: str, kty: str, byok: bytes, crv: str | None = None, **kwargs):
    ops = {"RSA-HSM": ["sign", "verify", "decrypt"], "EC-HSM": ["sign", "verify"]}.get(
        kty, ["wrapKey", "unwrapKey", "encrypt", "decrypt"]
    )
    jwk = JsonWebKey(kty=kty, t=byok, key_ops=ops, crv=crv)
    return client.import_key(name, jwk, hardware_protected=True, **kwargs)


def refused(call, status: int = 400, code: str = "BadParameter") -> str:
    with pytest.raises(HttpResponseError) as caught:
        call()
    assert caught.value.status_code == status
    assert caught.value.error.code == code
    return caught.value.error.message


def test_kek_is_import_only_rsa_hsm_with_a_versioned_kid(local_vault, kv_kek) -> None:
    assert kv_kek.key_type == "RSA-HSM"
    assert kv_kek.key_operations == ["import"]
    assert kv_kek.id == f"{local_vault.url}/keys/kek/{kv_kek.properties.version}"
    assert len(kv_kek.key.n) == 256


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_rsa_byok_import_signs_and_decrypts_like_the_original(
    local_vault, kv, kv_kek, bits
) -> None:
    original = rsa.generate_private_key(65537, bits)
    key = do_import(kv, f"rsa-{bits}", "RSA-HSM", package(kv_kek, pkcs8(original)))
    numbers = original.public_key().public_numbers()
    assert key.key_type == "RSA-HSM"
    assert int.from_bytes(key.key.n, "big") == numbers.n
    assert int.from_bytes(key.key.e, "big") == numbers.e
    crypto = local_vault.crypto_client(key.id)
    digest = hashlib.sha256(b"ceremony").digest()
    for alg, pad in (
        (SignatureAlgorithm.rs256, padding.PKCS1v15()),
        (SignatureAlgorithm.ps256, padding.PSS(padding.MGF1(hashes.SHA256()), 32)),
    ):
        signature = crypto.sign(alg, digest).signature
        original.public_key().verify(signature, digest, pad, utils.Prehashed(hashes.SHA256()))
    oaep = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
    secret = original.public_key().encrypt(b"challenge", oaep)
    assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep, secret).plaintext == b"challenge"


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_ec_byok_import_of_every_curve_signs_verifiably(local_vault, kv, kv_kek, curve) -> None:
    curve_class, hash_class, alg = CURVES[curve]
    original = ec.generate_private_key(curve_class())
    key = do_import(kv, f"ec-{curve}", "EC-HSM", package(kv_kek, pkcs8(original)), crv=curve)
    point = original.public_key().public_numbers()
    assert (key.key_type, key.key.crv) == ("EC-HSM", curve)
    assert int.from_bytes(key.key.x, "big") == point.x
    assert int.from_bytes(key.key.y, "big") == point.y
    digest = hashlib.new(hash_class.name, b"ceremony").digest()
    raw = local_vault.crypto_client(key.id).sign(alg, digest).signature
    half = len(raw) // 2
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )
    original.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hash_class())))


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_aes_byok_import_into_managed_hsm_wraps_and_encrypts(
    local_managed_hsm, mhsm, mhsm_kek, bits
) -> None:
    secret = os.urandom(bits // 8)
    key = do_import(mhsm, f"aes-{bits}", "oct-HSM", package(mhsm_kek, secret))
    assert key.key_type == "oct-HSM"
    assert key.key.k is None
    crypto = local_managed_hsm.crypto_client(key.id)
    challenge = os.urandom(32)
    # CKM_AES_KEY_WRAP (RFC 3394, like A*KW): the SDK sends it to the vault. For A128KW/A192KW/
    # A256KW, azure-keyvault-keys 4.11 wraps locally under a random key when the JWK has no 'k'.
    alg = KeyWrapAlgorithm.ckm_aes_key_wrap
    assert aes_key_unwrap(secret, crypto.wrap_key(alg, challenge).encrypted_key) == challenge
    assert crypto.unwrap_key(alg, aes_key_wrap(secret, challenge)).key == challenge
    result = crypto.encrypt(EncryptionAlgorithm(f"A{bits}GCM"), b"evidence")
    assert AESGCM(secret).decrypt(result.iv, result.ciphertext + result.tag, None) == b"evidence"


def test_byok_import_adds_a_version_to_an_existing_name(kv, kv_kek) -> None:
    for _ in range(2):
        do_import(
            kv,
            "twice",
            "EC-HSM",
            package(kv_kek, pkcs8(ec.generate_private_key(ec.SECP256R1()))),
            crv="P-256",
        )
    assert len(list(kv.list_properties_of_key_versions("twice"))) == 2


def test_softhsm_zero_padding_is_accepted_with_a_warning(kv, kv_kek, caplog) -> None:
    der = pkcs8(ec.generate_private_key(ec.SECP256R1()))
    assert len(der) % 8, "need a PKCS#8 length that is not a multiple of 8"
    padded = der + b"\0" * (-len(der) % 8)
    with caplog.at_level(logging.WARNING, logger="ceremony.localvault"):
        do_import(kv, "zero-padded", "EC-HSM", package(kv_kek, padded), crv="P-256")
    assert any(SOFTHSM_PADDING in r.getMessage() for r in caplog.records)


# -- refusals: each leaves no key behind ------------------------------------------------------


def assert_absent(client, name: str) -> None:
    with pytest.raises(ResourceNotFoundError):
        client.get_key(name)


def ec_payload() -> bytes:
    return pkcs8(ec.generate_private_key(ec.SECP256R1()))


def test_unknown_kek_is_refused(local_vault, kv, kv_kek) -> None:
    kid = f"{local_vault.url}/keys/kek/{'0' * 32}"
    message = refused(
        lambda: do_import(
            kv, "r-unknown", "EC-HSM", package(kv_kek, ec_payload(), kid), crv="P-256"
        )
    )
    assert "not found" in message
    foreign = "https://elsewhere.vault.azure.net/keys/kek/" + kv_kek.properties.version
    refused(
        lambda: do_import(
            kv, "r-unknown", "EC-HSM", package(kv_kek, ec_payload(), foreign), crv="P-256"
        )
    )
    assert_absent(kv, "r-unknown")


def test_kek_with_other_key_ops_is_refused(kv) -> None:
    not_a_kek = kv.create_rsa_key("not-a-kek", size=2048, hardware_protected=True)
    message = refused(
        lambda: do_import(kv, "r-ops", "EC-HSM", package(not_a_kek, ec_payload()), crv="P-256")
    )
    assert "key_ops exactly ['import']" in message
    assert_absent(kv, "r-ops")


@pytest.mark.parametrize("where", ["rsa-block", "aes-block"])
def test_tampered_ciphertext_is_refused(kv, kv_kek, where) -> None:
    ciphertext = bytearray(byok_ciphertext(kek_public_key(kv_kek), ec_payload()))
    ciphertext[10 if where == "rsa-block" else 256 + 10] ^= 0x01
    byok = byok_file(kv_kek.id, bytes(ciphertext))
    refused(lambda: do_import(kv, "r-tamper", "EC-HSM", byok, crv="P-256"))
    assert_absent(kv, "r-tamper")


def test_wrong_kty_and_wrong_curve_are_refused(kv, kv_kek) -> None:
    ec_byok = package(kv_kek, ec_payload())
    assert "holds an EC key" in refused(lambda: do_import(kv, "r-kty", "RSA-HSM", ec_byok))
    message = refused(lambda: do_import(kv, "r-kty", "EC-HSM", ec_byok, crv="P-384"))
    assert "P-256" in message
    aes_byok = package(kv_kek, os.urandom(32))
    refused(lambda: do_import(kv, "r-kty", "EC-HSM", aes_byok, crv="P-256"))
    assert_absent(kv, "r-kty")


def test_rsa_under_2048_bits_is_refused(kv, kv_kek) -> None:
    small = pkcs8(rsa.generate_private_key(65537, 1024))
    assert "1024 bits" in refused(
        lambda: do_import(kv, "r-small", "RSA-HSM", package(kv_kek, small))
    )
    assert_absent(kv, "r-small")


def test_oct_hsm_is_refused_outside_managed_hsm(kv, kv_kek) -> None:
    message = refused(lambda: do_import(kv, "r-aes", "oct-HSM", package(kv_kek, os.urandom(32))))
    assert "Managed HSM" in message
    assert_absent(kv, "r-aes")


def test_exportable_without_release_policy_is_refused(kv, kv_kek) -> None:
    byok = package(kv_kek, ec_payload())
    refused(lambda: do_import(kv, "r-export", "EC-HSM", byok, crv="P-256", exportable=True))
    assert_absent(kv, "r-export")
    policy = KeyReleasePolicy(b'{"anyOf": [], "version": "1.0.0"}')
    key = do_import(
        kv, "r-export", "EC-HSM", byok, crv="P-256", exportable=True, release_policy=policy
    )
    assert key.properties.exportable is True


def test_a_kek_cannot_sign_decrypt_or_be_exportable(local_vault, kv, kv_kek) -> None:
    crypto = local_vault.crypto_client(kv_kek.id)
    digest = hashlib.sha256(b"x").digest()
    refused(lambda: crypto.sign(SignatureAlgorithm.rs256, digest), 403, "Forbidden")
    refused(lambda: crypto.decrypt(EncryptionAlgorithm.rsa_oaep, b"\0" * 256), 403, "Forbidden")
    refused(lambda: crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep, b"\0" * 256), 403, "Forbidden")
    refused(
        lambda: kv.create_rsa_key(
            "r-kek-export",
            hardware_protected=True,
            key_operations=["import"],
            exportable=True,
            release_policy=KeyReleasePolicy(b"{}"),
        )
    )
    refused(lambda: kv.create_rsa_key("r-kek-mixed", key_operations=["import", "sign"]))
    refused(lambda: kv.update_key_properties("kek", key_operations=["import", "sign"]))
    assert kv.get_key("kek").key_operations == ["import"]


@pytest.mark.parametrize(
    "trailer",
    [b"\x01", b"\0" * 8, b"\0\0\x07", b"garbage!"],
    ids=["one", "eight", "nonzero", "text"],
)
def test_trailing_data_after_pkcs8_is_refused(kv, kv_kek, trailer) -> None:
    byok = package(kv_kek, ec_payload() + trailer)
    assert "unexpected bytes" in refused(
        lambda: do_import(kv, "r-trail", "EC-HSM", byok, crv="P-256")
    )
    assert_absent(kv, "r-trail")


def test_malformed_packages_are_refused(kv, kv_kek) -> None:
    payloads = (b"\x30\x03\x02\x01\x00", b"\x30\x84\x00\x00\x00\x02\x02\x01")
    packages = [package(kv_kek, p) for p in payloads]
    for byok in (b"not json", b"[]", b'{"header": {}}', *packages):
        refused(lambda byok=byok: do_import(kv, "r-shape", "EC-HSM", byok, crv="P-256"))
    assert_absent(kv, "r-shape")


# -- a package made by SoftHSM2 through ceremony.hsm --------------------------------------------


@pytest.mark.parametrize("spec", ["RSA-HSM 2048", "EC-HSM P-256"])
def test_softhsm_made_package_imports(local_vault, kv, kv_kek, hsm_token, spec) -> None:
    hsm = pytest.importorskip("ceremony.hsm")
    byok_module = pytest.importorskip("ceremony.byok")
    from ceremony.keyspec import KeySpec

    kty, param = spec.split()
    keyspec = KeySpec(kty, size=int(param)) if kty == "RSA-HSM" else KeySpec(kty, curve=param)
    kek_pem = kek_public_key(kv_kek).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    label = f"softhsm-{kty.lower()}"
    with hsm.open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as session:
        generated = session.generate(keyspec, label)
        ciphertext = session.wrap_for_byok(label, kek_pem, session.self_test())
    byok = byok_module.ByokPackage(kv_kek.id, ciphertext, "tests via SoftHSM2").to_bytes()
    key = do_import(kv, label, kty, byok, crv=keyspec.curve)
    public = serialization.load_pem_public_key(generated.public_key_pem.encode())
    digest = hashlib.sha256(b"ceremony").digest()
    crypto = local_vault.crypto_client(key.id)
    if isinstance(public, rsa.RSAPublicKey):
        assert int.from_bytes(key.key.n, "big") == public.public_numbers().n
        signature = crypto.sign(SignatureAlgorithm.rs256, digest).signature
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    else:
        assert int.from_bytes(key.key.x, "big") == public.public_numbers().x
        raw = crypto.sign(SignatureAlgorithm.es256, digest).signature
        der = utils.encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )
        public.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
