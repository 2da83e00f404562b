"""The local vault as a service: restart, files on disk, concurrency, faults, auth and the CLI."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.keyvault.keys import JsonWebKey, KeyClient
from azure.keyvault.keys.crypto import SignatureAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from ceremony.errors import UsageError, VaultError
from ceremony.localvault import Fault, LocalVault, LocalVaultAccess
from tests.fixtures_localvault import byok_ciphertext, byok_file, kek_public_key


def ec_jwk(private: ec.EllipticCurvePrivateKey) -> JsonWebKey:
    numbers = private.private_numbers()
    return JsonWebKey(
        kty="EC",
        crv="P-256",
        d=numbers.private_value.to_bytes(32, "big"),
        x=numbers.public_numbers.x.to_bytes(32, "big"),
        y=numbers.public_numbers.y.to_bytes(32, "big"),
    )


def verify_es256(key, digest: bytes, raw: bytes) -> None:
    x, y = (int.from_bytes(v, "big") for v in (key.key.x, key.key.y))
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    public.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_restart_keeps_keys_port_and_kek(tmp_path) -> None:
    state = tmp_path / "state"
    private = ec.generate_private_key(ec.SECP256R1())
    with LocalVault(state) as vault:
        client = vault.key_client()
        kek = client.create_rsa_key("kek", hardware_protected=True, key_operations=["import"])
        imported = client.import_key("imported", ec_jwk(private))
        made = client.create_rsa_key("made", size=2048)
        url = vault.url
        assert LocalVaultAccess(state).url == url
    assert not (state / "url").exists()
    with LocalVault(state) as vault:
        assert vault.url == url
        client = vault.key_client()
        assert client.get_key("imported").id == imported.id
        assert client.get_key("made").key.n == made.key.n
        digest = hashlib.sha256(b"after restart").digest()
        raw = vault.crypto_client(imported.id).sign(SignatureAlgorithm.es256, digest).signature
        verify_es256(imported, digest, raw)
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        byok = byok_file(kek.id, byok_ciphertext(kek_public_key(kek), der))
        again = client.import_key(
            "byok-after-restart", JsonWebKey(kty="EC-HSM", crv="P-256", t=byok)
        )
        assert again.key.x == imported.key.x


def test_state_files_are_private_and_keys_are_encrypted_at_rest(tmp_path) -> None:
    state = tmp_path / "state"
    private = ec.generate_private_key(ec.SECP256R1())
    secret = private.private_numbers().private_value.to_bytes(32, "big")
    with LocalVault(state) as vault:
        vault.key_client().import_key("at-rest", ec_jwk(private))
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("token", "master.key", "server.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    stored = b"".join(p.read_bytes() for p in state.iterdir() if p.name.startswith("vault.db"))
    assert secret not in stored
    assert b"BEGIN CERTIFICATE" in (state / "ca.pem").read_bytes()


def test_a_second_server_on_the_same_state_is_refused(local_vault) -> None:
    with pytest.raises(UsageError, match="already serving"):
        LocalVault(local_vault.state_dir).start()
    assert LocalVaultAccess(local_vault.state_dir).url == local_vault.url


def test_flavour_is_fixed_per_state_dir(tmp_path) -> None:
    with LocalVault(tmp_path / "s"):
        pass
    with pytest.raises(UsageError, match="keyvault vault"):
        LocalVault(tmp_path / "s", managed_hsm=True).start()


def test_access_without_a_running_vault_says_how_to_start_one(tmp_path) -> None:
    with pytest.raises(VaultError, match="ceremony localvault serve"):
        _ = LocalVaultAccess(tmp_path).url


def test_only_the_issued_token_is_accepted(local_vault) -> None:
    class WrongToken:
        def get_token(self, *scopes, **kwargs):
            from azure.core.credentials import AccessToken

            return AccessToken("not-the-token", int(time.time()) + 600)

    access = local_vault.access()
    client = KeyClient(local_vault.url, WrongToken(), **access.client_kwargs())
    with pytest.raises(ClientAuthenticationError):
        client.get_key("anything")


def test_concurrent_clients(local_vault) -> None:
    errors: list[BaseException] = []
    digest = hashlib.sha256(b"busy").digest()

    def worker(index: int) -> None:
        try:
            client = local_vault.key_client()
            key = client.create_ec_key(f"busy-{index}", curve="P-256")
            for _ in range(3):
                assert client.get_key(f"busy-{index}").id == key.id
            client.create_ec_key("busy-shared", curve="P-256")
            raw = local_vault.crypto_client(key.id).sign(SignatureAlgorithm.es256, digest).signature
            verify_es256(key, digest, raw)
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    client = local_vault.key_client()
    assert {f"busy-{i}" for i in range(8)} <= {p.name for p in client.list_properties_of_keys()}
    assert len(list(client.list_properties_of_key_versions("busy-shared"))) == 8


# -- faults -------------------------------------------------------------------------------------


def test_fault_specs_parse_and_refuse_nonsense() -> None:
    assert Fault.parse("import:503") == Fault("import", "503", 1)
    assert Fault.parse("import:429:2") == Fault("import", "429", 2)
    assert Fault.parse("Import:drop-after-commit") == Fault("import", "drop-after-commit", 1)
    for bad in ("import", "import:500", "teleport:503", "import:503:0", "import:503:x", "a:b:c:d"):
        with pytest.raises(UsageError):
            Fault.parse(bad)


def test_503_then_success_through_sdk_retry(tmp_path) -> None:
    with LocalVault(tmp_path / "s", faults=["import:503:2", Fault("create", "503")]) as vault:
        client = vault.key_client(retry_backoff_factor=0.05)
        client.import_key("retried", ec_jwk(ec.generate_private_key(ec.SECP256R1())))
        assert len(list(client.list_properties_of_key_versions("retried"))) == 1
        no_retry = vault.key_client(retry_total=0)
        with pytest.raises(HttpResponseError) as caught:
            no_retry.create_ec_key("unlucky")
        assert caught.value.status_code == 503


def test_429_carries_retry_after_and_the_sdk_waits(tmp_path) -> None:
    with LocalVault(tmp_path / "s", faults=["import:429"]) as vault:
        client = vault.key_client()
        started = time.monotonic()
        client.import_key("throttled", ec_jwk(ec.generate_private_key(ec.SECP256R1())))
        assert time.monotonic() - started >= 0.9
        assert len(list(client.list_properties_of_key_versions("throttled"))) == 1


def test_drop_after_commit_leaves_the_key_behind(tmp_path) -> None:
    with LocalVault(tmp_path / "s", faults=["import:drop-after-commit"]) as vault:
        client = vault.key_client(retry_total=0)
        with pytest.raises(AzureError):
            client.import_key("dropped", ec_jwk(ec.generate_private_key(ec.SECP256R1())))
        versions = list(client.list_properties_of_key_versions("dropped"))
        assert len(versions) == 1


# -- command line -------------------------------------------------------------------------------


def test_cli_serves_until_sigterm_and_prints_the_url_first(tmp_path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "ceremony", "localvault", "serve", "--state", str(state),
         "--managed-hsm", "--fault", "create:503"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:")
        access = LocalVaultAccess(state)
        assert access.url == url
        client = access.key_client(retry_backoff_factor=0.05)
        key = client.create_oct_key("aes", size=256, hardware_protected=True)
        assert key.id.startswith(url + "/keys/aes/")
        info = subprocess.run(
            [sys.executable, "-m", "ceremony", "localvault", "info", "--state", str(state)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert url in info.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "fault create:503:1: refusing" in stderr
    assert not (state / "url").exists()


def test_cli_refuses_a_bad_fault_spec_without_a_traceback(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ceremony", "localvault", "serve", "--state", str(tmp_path),
         "--fault", "import:418"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("ceremony: error: Fault kind")
    assert result.stdout == ""
    assert not os.listdir(tmp_path)


def test_cli_info_on_a_directory_without_a_vault(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ceremony", "localvault", "info", "--state", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "holds no local vault" in result.stderr
    assert "Traceback" not in result.stderr
