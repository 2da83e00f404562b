"""The local vault's keys API through the unmodified Azure SDK (KeyClient, CryptographyClient).

Results are checked against the key's public half with pyca/cryptography, not with vault code.
"""

from __future__ import annotations

import datetime
import hashlib
import os

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.keys import JsonWebKey, KeyReleasePolicy
from azure.keyvault.keys.crypto import EncryptionAlgorithm, KeyWrapAlgorithm, SignatureAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


@pytest.fixture(scope="module")
def kv(local_vault):
    return local_vault.key_client()


@pytest.fixture(scope="module")
def mhsm(local_managed_hsm):
    return local_managed_hsm.key_client()


@pytest.fixture(scope="module")
def rsa_key(kv):
    return kv.create_rsa_key("rsa", size=2048, hardware_protected=True, tags={"use": "tests"})


def rsa_public(key) -> rsa.RSAPublicKey:
    n, e = (int.from_bytes(v, "big") for v in (key.key.n, key.key.e))
    return rsa.RSAPublicNumbers(e, n).public_key()


def raw_to_der(raw: bytes) -> bytes:
    half = len(raw) // 2
    return utils.encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


def status_of(call) -> tuple[int, str]:
    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value.status_code, caught.value.error.code


def test_create_returns_a_versioned_kid_on_the_vaults_own_host(local_vault, rsa_key) -> None:
    assert rsa_key.id == f"{local_vault.url}/keys/rsa/{rsa_key.properties.version}"
    assert rsa_key.key_type == "RSA-HSM"
    assert len(rsa_key.key.n) == 256
    assert rsa_key.properties.tags == {"use": "tests"}
    assert rsa_key.properties.enabled is True
    assert rsa_key.properties.recovery_level == "Recoverable+Purgeable"
    assert set(rsa_key.key_operations) == {
        "encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"
    }  # fmt: skip


@pytest.mark.parametrize("size", [3072, 4096])
def test_rsa_sizes(kv, size) -> None:
    key = kv.create_rsa_key(f"rsa-{size}", size=size, hardware_protected=True)
    assert len(key.key.n) * 8 == size


@pytest.mark.parametrize("curve", ["P-256", "P-384", "P-521", "P-256K"])
def test_ec_curves(kv, curve) -> None:
    key = kv.create_ec_key(f"ec-{curve}", curve=curve, hardware_protected=True)
    assert (key.key_type, key.key.crv, key.key_operations) == ("EC-HSM", curve, ["sign", "verify"])


def test_get_latest_and_by_version(kv) -> None:
    first = kv.create_ec_key("versions", curve="P-256")
    second = kv.create_ec_key("versions", curve="P-256")
    assert kv.get_key("versions").id == second.id
    assert kv.get_key("versions", first.properties.version).id == first.id
    assert first.key.x != second.key.x
    assert {p.version for p in kv.list_properties_of_key_versions("versions")} == {
        first.properties.version,
        second.properties.version,
    }
    with pytest.raises(ResourceNotFoundError):
        kv.get_key("versions", "0" * 32)
    with pytest.raises(ResourceNotFoundError):
        kv.get_key("never-made")


def test_listing_pages_through_next_link(kv) -> None:
    names = [f"page-{i}" for i in range(7)]
    for name in names:
        kv.create_ec_key(name, curve="P-256")
    pages = list(kv.list_properties_of_keys(max_page_size=3).by_page())
    listed = [p.name for page in pages for p in page]
    assert len(pages) >= 3
    assert set(names) <= set(listed)
    assert len(listed) == len(set(listed))
    for _ in range(3):
        kv.create_ec_key("page-0", curve="P-256")
    versions = list(kv.list_properties_of_key_versions("page-0", max_page_size=2).by_page())
    assert [len(list(page)) for page in versions] == [2, 2]


def test_update_properties(local_vault, kv) -> None:
    key = kv.create_ec_key("updatable", curve="P-256")
    updated = kv.update_key_properties("updatable", tags={"stage": "2"}, enabled=False)
    assert updated.properties.tags == {"stage": "2"}
    assert updated.properties.enabled is False
    crypto = local_vault.crypto_client(key.id)
    digest = hashlib.sha256(b"x").digest()
    assert status_of(lambda: crypto.sign(SignatureAlgorithm.es256, digest)) == (403, "Forbidden")
    kv.update_key_properties("updatable", key.properties.version, enabled=True)
    kv.update_key_properties("updatable", key_operations=["verify"])
    assert status_of(lambda: crypto.sign(SignatureAlgorithm.es256, digest)) == (403, "Forbidden")
    kv.update_key_properties("updatable", key_operations=["sign", "verify"])
    assert crypto.sign(SignatureAlgorithm.es256, digest).signature
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    kv.update_key_properties("updatable", expires_on=past)
    assert status_of(lambda: crypto.sign(SignatureAlgorithm.es256, digest)) == (403, "Forbidden")
    future = past + datetime.timedelta(days=1)
    kv.update_key_properties("updatable", expires_on=future, not_before=future)
    assert status_of(lambda: crypto.sign(SignatureAlgorithm.es256, digest)) == (403, "Forbidden")


def test_soft_delete_recover_and_purge(kv) -> None:
    kv.create_ec_key("doomed", curve="P-256")
    deleted = kv.begin_delete_key("doomed", _polling_interval=0).result()
    assert deleted.recovery_id.endswith("/deletedkeys/doomed")
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    with pytest.raises(ResourceNotFoundError):
        kv.get_key("doomed")
    assert kv.get_deleted_key("doomed").name == "doomed"
    assert "doomed" in {d.name for d in kv.list_deleted_keys()}
    with pytest.raises(ResourceExistsError):
        kv.create_ec_key("doomed", curve="P-256")
    poller = kv.begin_recover_deleted_key("doomed", _polling_interval=0)
    poller.wait()
    assert kv.get_key("doomed").name == "doomed"
    kv.begin_delete_key("doomed", _polling_interval=0).wait()
    kv.purge_deleted_key("doomed")
    with pytest.raises(ResourceNotFoundError):
        kv.get_deleted_key("doomed")
    assert kv.create_ec_key("doomed", curve="P-256").name == "doomed"


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_rsa_signatures_verify_with_the_public_half(local_vault, rsa_key, alg) -> None:
    hash_class = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[alg[2:]]
    digest = hashlib.new(hash_class.name, b"ceremony").digest()
    crypto = local_vault.crypto_client(rsa_key.id)
    signature = crypto.sign(SignatureAlgorithm(alg), digest).signature
    pad = (
        asym.PKCS1v15()
        if alg.startswith("RS")
        else asym.PSS(asym.MGF1(hash_class()), hash_class().digest_size)
    )
    rsa_public(rsa_key).verify(signature, digest, pad, utils.Prehashed(hash_class()))
    assert crypto.verify(SignatureAlgorithm(alg), digest, signature).is_valid


@pytest.mark.parametrize(
    ("curve", "alg", "hash_class"),
    [
        ("P-256", "ES256", hashes.SHA256),
        ("P-384", "ES384", hashes.SHA384),
        ("P-521", "ES512", hashes.SHA512),
        ("P-256K", "ES256K", hashes.SHA256),
    ],
)
def test_ec_signatures_verify_with_the_public_half(kv, local_vault, curve, alg, hash_class) -> None:
    key = kv.create_ec_key(f"sig-{curve}", curve=curve)
    digest = hashlib.new(hash_class.name, b"ceremony").digest()
    raw = local_vault.crypto_client(key.id).sign(SignatureAlgorithm(alg), digest).signature
    x, y = (int.from_bytes(v, "big") for v in (key.key.x, key.key.y))
    curve_class = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}.get(
        curve, ec.SECP256K1
    )
    public = ec.EllipticCurvePublicNumbers(x, y, curve_class()).public_key()
    public.verify(raw_to_der(raw), digest, ec.ECDSA(utils.Prehashed(hash_class())))


def test_ec_algorithm_must_match_the_curve(local_vault, kv) -> None:
    key = kv.create_ec_key("ec-mismatch", curve="P-256")
    crypto = local_vault.crypto_client(key.id)
    digest = hashlib.sha384(b"x").digest()
    assert status_of(lambda: crypto.sign(SignatureAlgorithm.es384, digest))[0] == 400


@pytest.mark.parametrize(
    ("alg", "pad"),
    [
        ("RSA-OAEP", asym.OAEP(asym.MGF1(hashes.SHA1()), hashes.SHA1(), None)),
        ("RSA-OAEP-256", asym.OAEP(asym.MGF1(hashes.SHA256()), hashes.SHA256(), None)),
        ("RSA1_5", asym.PKCS1v15()),
    ],
)
def test_rsa_decrypt_and_unwrap_open_what_the_public_half_sealed(
    local_vault, rsa_key, alg, pad
) -> None:
    crypto = local_vault.crypto_client(rsa_key.id)
    sealed = rsa_public(rsa_key).encrypt(b"secret", pad)
    assert crypto.decrypt(EncryptionAlgorithm(alg), sealed).plaintext == b"secret"
    assert crypto.unwrap_key(KeyWrapAlgorithm(alg), sealed).key == b"secret"
    wrapped = crypto.wrap_key(KeyWrapAlgorithm(alg), b"key bytes").encrypted_key
    assert crypto.unwrap_key(KeyWrapAlgorithm(alg), wrapped).key == b"key bytes"


def test_aes_operations_in_managed_hsm(local_managed_hsm, mhsm) -> None:
    key = mhsm.create_oct_key("aes", size=256, hardware_protected=True)
    assert (key.key_type, key.key.k) == ("oct-HSM", None)
    crypto = local_managed_hsm.crypto_client(key.id)
    sealed = crypto.encrypt(
        EncryptionAlgorithm.a256_gcm, b"payload", additional_authenticated_data=b"aad"
    )
    opened = crypto.decrypt(
        EncryptionAlgorithm.a256_gcm,
        sealed.ciphertext,
        iv=sealed.iv,
        authentication_tag=sealed.tag,
        additional_authenticated_data=b"aad",
    )
    assert opened.plaintext == b"payload"
    iv = os.urandom(16)
    cbc = crypto.encrypt(EncryptionAlgorithm.a256_cbc, b"0123456789abcdef", iv=iv)
    plain = crypto.decrypt(EncryptionAlgorithm.a256_cbc, cbc.ciphertext, iv=iv).plaintext
    assert plain == b"0123456789abcdef"
    wrapped = crypto.wrap_key(
        KeyWrapAlgorithm.ckm_aes_key_wrap_pad, b"odd length key!"
    ).encrypted_key
    assert (
        crypto.unwrap_key(KeyWrapAlgorithm.ckm_aes_key_wrap_pad, wrapped).key == b"odd length key!"
    )
    small = mhsm.create_oct_key("aes-128", size=128, hardware_protected=True)
    assert status_of(
        lambda: local_managed_hsm.crypto_client(small.id).encrypt(
            EncryptionAlgorithm.a256_gcm, b"x"
        )
    ) == (400, "BadParameter")


def test_plain_jwk_import_keeps_the_key(local_vault, kv, local_managed_hsm, mhsm) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    numbers = private.private_numbers()
    jwk = JsonWebKey(
        kty="EC",
        crv="P-384",
        d=numbers.private_value.to_bytes(48, "big"),
        x=numbers.public_numbers.x.to_bytes(48, "big"),
        y=numbers.public_numbers.y.to_bytes(48, "big"),
        key_ops=["sign", "verify"],
    )
    key = kv.import_key("plain-ec", jwk, hardware_protected=True)
    assert key.key_type == "EC-HSM"
    digest = hashlib.sha384(b"x").digest()
    raw = local_vault.crypto_client(key.id).sign(SignatureAlgorithm.es384, digest).signature
    private.public_key().verify(raw_to_der(raw), digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    secret = os.urandom(16)
    aes = mhsm.import_key(
        "plain-aes", JsonWebKey(kty="oct", k=secret, key_ops=["encrypt", "decrypt"])
    )
    assert aes.key_type == "oct-HSM"
    iv = os.urandom(16)
    out = local_managed_hsm.crypto_client(aes.id)
    sealed = out.encrypt(EncryptionAlgorithm.a128_cbc, b"A" * 16, iv=iv).ciphertext
    cipher = Cipher(algorithms.AES(secret), modes.CBC(iv)).decryptor()
    assert cipher.update(sealed) + cipher.finalize() == b"A" * 16


def test_flavour_and_key_ops_rules(kv, mhsm) -> None:
    assert status_of(lambda: kv.create_oct_key("no-aes", size=256, hardware_protected=True)) == (
        400,
        "BadParameter",
    )
    assert status_of(lambda: kv.create_ec_key("bad-ops", key_operations=["encrypt"]))[0] == 400
    assert status_of(lambda: kv.create_rsa_key("bad-size", size=1024))[0] == 400
    assert status_of(lambda: mhsm.create_rsa_key("soft", size=2048))[0] == 400
    assert status_of(lambda: kv.create_ec_key("bad-curve", curve="P-192"))[0] == 400
    policy = KeyReleasePolicy(b'{"anyOf": [], "version": "1.0.0"}')
    assert (
        status_of(lambda: kv.create_rsa_key("exp", hardware_protected=True, exportable=True))[0]
        == 400
    )
    exportable = kv.create_rsa_key(
        "exp", hardware_protected=True, exportable=True, release_policy=policy
    )
    assert exportable.properties.exportable is True
    assert exportable.properties.release_policy.encoded_policy == policy.encoded_policy
    with pytest.raises(ResourceNotFoundError):
        kv.get_key("bad-ops")


def test_random_bytes(kv) -> None:
    assert len(kv.get_random_bytes(32)) == 32
