"""Cloud faults during a ceremony: throttling and 5xx are retried within bounds; a lost import
answer is recognised on retry and never becomes a second version. Uses the local vault's faults.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.cli import main
from ceremony.errors import VaultError
from ceremony.evidence.records import ImportRecord
from ceremony.localvault import LocalVault
from ceremony.vault import (
    Kek,
    RetrySettings,
    VaultConnection,
    connect,
    create_kek,
    fetch_kek,
    import_and_prove,
)
from tests.fixtures_localvault import byok_ciphertext, byok_file


@pytest.fixture
def faulty(tmp_path: Path) -> Callable[..., Iterator[tuple[VaultConnection, Kek]]]:
    """A fresh local vault with the given faults, its connection, and a KEK made before them."""

    @contextmanager
    def start(*faults: str) -> Iterator[tuple[VaultConnection, Kek]]:
        with LocalVault(tmp_path / "state", faults=list(faults)) as vault:
            conn = connect(local_vault_dir=vault.state_dir)
            yield conn, create_kek(conn, "kek", size=2048)

    return start


def ec_package(kek: Kek) -> tuple[bytes, ec.EllipticCurvePublicKey]:
    """A .byok built with pyca/cryptography only (not the HSM code), and its public key."""
    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kek_public = serialization.load_pem_public_key(kek.public_key_pem.encode())
    return byok_file(kek.kid, byok_ciphertext(kek_public, pkcs8)), private.public_key()  # type: ignore[arg-type]


def versions(conn: VaultConnection, name: str) -> int:
    try:
        return len(list(conn.key_client().list_properties_of_key_versions(name)))
    except ResourceNotFoundError:
        return 0


def test_import_503_is_retried_without_a_duplicate(faulty: Callable) -> None:
    with faulty("import:503") as (conn, kek):
        byok, public = ec_package(kek)
        record = import_and_prove(conn, "k", byok, "EC-HSM", curve="P-256", hsm_public=public)
        assert record.result.attempts == 2 and not record.result.recognised
        assert record.proof is not None and record.proof.verified
        assert versions(conn, "k") == 1


def test_import_503_beyond_the_bound_fails_cleanly(faulty: Callable) -> None:
    with faulty("import:503:20") as (conn, kek):
        conn = dataclasses.replace(conn, retry=RetrySettings(backoff_factor=0.01))
        byok, public = ec_package(kek)
        with pytest.raises(VaultError, match="HTTP 503"):
            import_and_prove(conn, "k", byok, "EC-HSM", curve="P-256", hsm_public=public)
        assert versions(conn, "k") == 0


def test_import_429_waits_for_retry_after(faulty: Callable) -> None:
    with faulty("import:429") as (conn, kek):
        byok, public = ec_package(kek)
        started = time.monotonic()
        record = import_and_prove(conn, "k", byok, "EC-HSM", curve="P-256", hsm_public=public)
        assert time.monotonic() - started >= 0.9  # the vault's Retry-After: 1
        assert record.result.attempts == 1  # the SDK's retry policy repeated it, not the importer
        assert versions(conn, "k") == 1


def test_lost_import_answer_is_recognised(faulty: Callable) -> None:
    with faulty("import:drop-after-commit") as (conn, kek):
        byok, public = ec_package(kek)
        record = import_and_prove(conn, "k", byok, "EC-HSM", curve="P-256", hsm_public=public)
        assert record.result.recognised
        assert record.proof is not None and record.proof.verified
        assert versions(conn, "k") == 1


def test_lost_import_answer_recognised_by_public_key_without_tag_match(faulty: Callable) -> None:
    """A different package of the same key (rewrapped) is still the same key: no second import."""
    with faulty() as (conn, kek):
        byok, public = ec_package(kek)
        import_and_prove(conn, "k", byok, "EC-HSM", curve="P-256", hsm_public=public)
        again = import_and_prove(conn, "k", byok + b" ", "EC-HSM", curve="P-256", hsm_public=public)
        assert again.result.recognised
        assert versions(conn, "k") == 1


def test_get_and_sign_5xx_are_retried(faulty: Callable) -> None:
    with faulty("get:503:2", "sign:503") as (conn, kek):
        assert fetch_kek(conn, "kek") == kek
        byok, public = ec_package(kek)
        record = import_and_prove(conn, "k", byok, "EC-HSM", curve="P-256", hsm_public=public)
        assert record.proof is not None and record.proof.verified


def test_cli_recognises_a_lost_import(
    faulty: Callable, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with faulty("import:drop-after-commit") as (conn, kek):
        byok, public = ec_package(kek)
        (tmp_path / "k.byok").write_bytes(byok)
        (tmp_path / "k.pub.pem").write_bytes(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        state = str(tmp_path / "state")
        code = main(["import", "--local-vault", state, "--name", "k", "--byok",
                     str(tmp_path / "k.byok"), "--type", "EC-HSM", "--curve", "P-256",
                     "--hsm-public-key", str(tmp_path / "k.pub.pem")])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0
        assert "Found the earlier import" in out
        record = ImportRecord.from_json((tmp_path / "k.import.json").read_bytes())
        assert record.attributes["recognised_existing_import"] is True
        assert versions(conn, "k") == 1
