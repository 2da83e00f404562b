"""The strict local vault (`LocalVault(strict=True)`, `ceremony localvault serve --strict`): it
refuses what Azure refuses with no rehearsal allowance, SoftHSM2 2.6's zero-padded keys included,
through the real Azure SDK over HTTPS; the rehearsal vault still takes them, with its warning."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.localvault.access import LocalVaultAccess
from ceremony.localvault.byok_import import SOFTHSM_PADDING
from tests.fixtures_localvault import kek_public_key
from tests.softhsm27 import module_path, requires_softhsm27, token27
from tests.test_localvault_byok import assert_absent, do_import, package, pkcs8, refused
from tests.workbook_support import clean_env

ZERO_PADDED = "zero-padded before RFC 5649 wrapping (SoftHSM2 2.6's deviation), which Azure refuses"


def client_and_kek(vault):
    """A KeyClient for the vault and a KEK made in it."""
    client = vault.key_client()
    return client, client.create_rsa_key(
        "kek", size=2048, hardware_protected=True, key_operations=["import"]
    )


@pytest.fixture(scope="module")
def strict(strict_vault):
    return client_and_kek(strict_vault)


@pytest.fixture(scope="module")
def lenient(local_vault):
    return client_and_kek(local_vault)


def kek_pem(kek) -> bytes:
    return kek_public_key(kek).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_zero_padded_key_is_refused_as_azure_does(strict) -> None:
    client, kek = strict
    der = pkcs8(ec.generate_private_key(ec.SECP256R1()))
    assert len(der) % 8, "need a PKCS#8 length that is not a multiple of 8"
    padded = package(kek, der + b"\0" * (-len(der) % 8))
    message = refused(lambda: do_import(client, "padded", "EC-HSM", padded, crv="P-256"))
    assert ZERO_PADDED in message and f"followed by {-len(der) % 8} zero bytes" in message
    assert_absent(client, "padded")
    key = do_import(client, "exact", "EC-HSM", package(kek, der), crv="P-256")
    assert key.key_type == "EC-HSM"


@pytest.fixture(scope="module")
def debian_packages(hsm_token, strict, lenient) -> dict[str, tuple[bytes, str]]:
    """One EC P-256 key made by Debian's SoftHSM2 2.6, wrapped for each vault's KEK; its PKCS#8
    (67 bytes, no public key) is not a multiple of 8, so 2.6 zero-pads it."""
    from ceremony.byok import ByokPackage
    from ceremony.hsm import open_session
    from ceremony.keyspec import KeySpec

    made = {}
    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as session:
        test = session.self_test()
        assert test.deviation == "zero-pad-before-rfc5649", "this is Debian's SoftHSM2 2.6"
        key = session.generate(KeySpec("EC-HSM", curve="P-256"), "strict-vault-ec")
        for side, (_, kek) in (("strict", strict), ("lenient", lenient)):
            ciphertext = session.wrap_for_byok(key.label, kek_pem(kek), test)
            made[side] = (
                ByokPackage(kek.id, ciphertext, "SoftHSM2 2.6").to_bytes(),
                key.public_key_pem,
            )
    return made


def test_a_package_made_on_debian_softhsm26_is_refused_by_the_strict_vault(
    strict, debian_packages
) -> None:
    client, _ = strict
    byok, _ = debian_packages["strict"]
    message = refused(lambda: do_import(client, "debian", "EC-HSM", byok, crv="P-256"))
    assert ZERO_PADDED in message
    assert_absent(client, "debian")


def test_the_rehearsal_vault_still_accepts_it_with_its_warning(
    lenient, debian_packages, caplog
) -> None:
    client, _ = lenient
    byok, public_pem = debian_packages["lenient"]
    with caplog.at_level(logging.WARNING, logger="ceremony.localvault"):
        key = do_import(client, "debian", "EC-HSM", byok, crv="P-256")
    assert any(SOFTHSM_PADDING in r.getMessage() for r in caplog.records)
    public = serialization.load_pem_public_key(public_pem.encode())
    assert int.from_bytes(key.key.x, "big") == public.public_numbers().x


@requires_softhsm27
def test_a_package_made_on_softhsm27_is_accepted_by_the_strict_vault(strict, tmp_path) -> None:
    """`ceremony byok` on 2.7 (conformant, no --rehearsal) for the strict vault's KEK: the same
    kind of key that 2.6 zero-pads imports, and the vault holds the HSM's key."""
    client, kek = strict
    (tmp_path / "kek.pem").write_bytes(kek_pem(kek))
    env = {**clean_env(), **token27(tmp_path / "hsm", "strict-vault", "user-2718")}
    out = tmp_path / "ec.byok"
    done = subprocess.run(
        [sys.executable, "-m", "ceremony", "byok", "--module", module_path(), "--token",
         "strict-vault", "--kek-pem", str(tmp_path / "kek.pem"), "--kid", kek.id, "--type",
         "EC-HSM", "--curve", "P-256", "--label", "ec", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    key = do_import(client, "softhsm27", "EC-HSM", out.read_bytes(), crv="P-256")
    public = serialization.load_pem_public_key(out.with_suffix(".pub.pem").read_bytes())
    assert int.from_bytes(key.key.x, "big") == public.public_numbers().x
    assert int.from_bytes(key.key.y, "big") == public.public_numbers().y


@pytest.mark.parametrize(
    ("flags", "mode", "said"),
    [
        (["--strict"], "strict", "strict (refuses all Azure refuses)"),
        ([], "rehearsal", "rehearsal (accepts SoftHSM2 2.6's zero-padded keys with a warning)"),
    ],
)
def test_serve_says_whether_it_is_strict_at_start_and_in_info(tmp_path, flags, mode, said):
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "ceremony", "localvault", "serve", "--state", str(state), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = process.stdout.readline().strip()
        assert LocalVaultAccess(state).mode == mode
        info = subprocess.run(
            [sys.executable, "-m", "ceremony", "localvault", "info", "--state", str(state)],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        facts = json.loads(info.stdout)
        assert (facts["url"], facts["mode"]) == (url, mode)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert f"serving at {url}, {said};" in stderr
    assert not (state / "mode").exists()
