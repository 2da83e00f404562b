"""`ceremony kek` and `ceremony import` end to end; every refusal is one line, no trace, no import.

Runs the real CLI in-process against the local vault (real SDK, HTTPS) and a SoftHSM2 token.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.cli import main
from ceremony.evidence.records import ImportRecord, KekRecord
from ceremony.fingerprint import Fingerprint
from ceremony.localvault import LocalVault
from ceremony.vault import VaultConnection, connect
from tests.fixtures_hsm import HsmToken
from tests.fixtures_localvault import byok_ciphertext, byok_file, kek_public_key


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a command that must be refused; return its one error line."""
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ceremony: error: ")
    return lines[0]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions(conn: VaultConnection, name: str) -> list[str]:
    try:
        return [p.version for p in conn.key_client().list_properties_of_key_versions(name)]
    except ResourceNotFoundError:
        return []


@pytest.fixture(scope="module")
def kv_dir(local_vault: LocalVault) -> Path:
    return Path(local_vault.state_dir)


@pytest.fixture(scope="module")
def mhsm_dir(local_managed_hsm: LocalVault) -> Path:
    return Path(local_managed_hsm.state_dir)


@pytest.fixture(scope="module")
def kv(kv_dir: Path) -> VaultConnection:
    return connect(local_vault_dir=kv_dir)


@pytest.fixture(scope="module")
def kek_files(kv_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ceremony kek create` then `ceremony kek fetch` with the fingerprint it printed."""
    folder = tmp_path_factory.mktemp("kek")
    assert main(["kek", "create", "--local-vault", str(kv_dir), "--name", "kek", "--size", "2048",
                 "--out", str(folder / "created.pem")]) == 0  # fmt: skip
    created = KekRecord.from_json((folder / "created.json").read_bytes())
    expected = created.public_key_sha256.upper()
    assert main(["kek", "fetch", "--local-vault", str(kv_dir), "--name", "kek", "--out",
                 str(folder / "kek.pem"), "--expect-fingerprint", expected]) == 0  # fmt: skip
    return folder / "kek.pem"


def hsm_byok(
    capsys: pytest.CaptureFixture[str], token: HsmToken, kek_pem: Path, out: Path, *kind: str
) -> Path:
    """`ceremony byok` (the HSM side) for the KEK in kek_pem; returns the .byok path."""
    kid = json.loads(kek_pem.with_suffix(".json").read_text())["kid"]
    code, _, err = run(capsys, "byok", "--module", token.module_path, "--token", token.label,
                       "--kek-pem", kek_pem, "--kid", kid, *kind, "--label", out.stem,
                       "--out", out, "--rehearsal")  # fmt: skip
    assert code == 0, err
    return out


@pytest.fixture(autouse=True)
def pin(hsm_token: HsmToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)


def test_kek_fetch_prints_and_writes_pem_and_json(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kek_files: Path, tmp_path: Path
) -> None:
    record = KekRecord.from_json(kek_files.with_suffix(".json").read_bytes())
    version = record.kid.rsplit("/", 1)[1]
    code, out, _ = run(capsys, "kek", "fetch", "--local-vault", kv_dir, "--name", "kek",
                       "--version", version, "--out", tmp_path / "again.pem")  # fmt: skip
    assert code == 0
    fingerprint = Fingerprint.parse(record.public_key_sha256)
    assert record.kid in out and fingerprint.short in out and fingerprint.words in out
    assert "▀" in out or "█" in out  # the QR code
    assert (tmp_path / "again.pem").read_bytes() == kek_files.read_bytes()
    assert record.key_ops == ["import"] and record.kty == "RSA-HSM" and record.source == "vault"
    assert record.out_of_band_sha256 == record.public_key_sha256  # confirmed at kek_files
    again = KekRecord.from_json((tmp_path / "again.json").read_bytes())
    assert again.out_of_band_sha256 is None


@pytest.mark.parametrize(
    ("kind", "flags"),
    [(("--type", "RSA-HSM", "--size", "2048"), ()), (("--type", "EC-HSM", "--curve", "P-384"),
     ("--curve", "P-384"))],
    ids=["RSA-2048", "EC-P-384"],
)  # fmt: skip
def test_import_chain_from_the_command_line(
    capsys: pytest.CaptureFixture[str],
    hsm_token: HsmToken,
    kv_dir: Path,
    kv: VaultConnection,
    kek_files: Path,
    tmp_path: Path,
    kind: tuple[str, ...],
    flags: tuple[str, ...],
) -> None:
    name = f"cli-{kind[1].lower()}"
    byok = hsm_byok(capsys, hsm_token, kek_files, tmp_path / f"{name}.byok", *kind)
    code, out, err = run(capsys, "import", "--local-vault", kv_dir, "--name", name, "--byok", byok,
                         "--type", kind[1], *flags, "--hsm-public-key",
                         byok.with_suffix(".pub.pem"))  # fmt: skip
    assert code == 0, err
    assert "Possession:   proven" in out
    record = ImportRecord.from_json((tmp_path / f"{name}.import.json").read_bytes())
    assert record.proof["method"] == "sign" and record.byok_sha256 == sha256_file(byok)
    assert record.public_key_jwk is not None
    assert versions(kv, name) == [record.attributes["version"]]
    # The same command again finds the import instead of repeating it, but keeps the record.
    again = refused(capsys, "import", "--local-vault", kv_dir, "--name", name, "--byok", byok,
                    "--type", kind[1], *flags)  # fmt: skip
    assert "already exists" in again
    assert versions(kv, name) == [record.attributes["version"]]


@pytest.fixture(scope="module")
def mhsm_kek(mhsm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ceremony kek create` in the local Managed HSM, for the AES keys."""
    kek_pem = tmp_path_factory.mktemp("mhsm-kek") / "kek.pem"
    assert main(["kek", "create", "--local-vault", str(mhsm_dir), "--name", "kek-aes",
                 "--size", "2048", "--out", str(kek_pem)]) == 0  # fmt: skip
    return kek_pem


@dataclass(frozen=True)
class AesCli:
    """The AES chain's two sides: `ceremony byok` on the token, the local Managed HSM to import
    into (`vault_dir` for --local-vault)."""

    capsys: pytest.CaptureFixture[str]
    token: HsmToken
    kek: Path
    folder: Path
    vault_dir: Path

    def byok(self, name: str) -> Path:
        """`ceremony byok --type oct-HSM`: <name>.byok and <name>.challenge.json."""
        out = self.folder / f"{name}.byok"
        hsm_byok(self.capsys, self.token, self.kek, out, "--type", "oct-HSM", "--size", "128")
        assert out.with_suffix(".challenge.json").is_file()
        return out

    def versions(self, name: str) -> list[str]:
        return versions(connect(local_vault_dir=self.vault_dir), name)


@pytest.fixture
def aes(
    capsys: pytest.CaptureFixture[str],
    hsm_token: HsmToken,
    mhsm_kek: Path,
    mhsm_dir: Path,
    tmp_path: Path,
) -> AesCli:
    return AesCli(capsys, hsm_token, mhsm_kek, tmp_path, mhsm_dir)


def test_aes_chain_from_the_command_line(capsys: pytest.CaptureFixture[str], aes: AesCli) -> None:
    """The HSM side writes the challenge; the import (no HSM) has the vault unwrap it."""
    byok = aes.byok("cli-aes")
    challenge = byok.with_suffix(".challenge.json")
    code, out, err = run(capsys, "import", "--local-vault", aes.vault_dir, "--name", "cli-aes",
                         "--byok", byok, "--type", "oct-HSM", "--challenge", challenge)  # fmt: skip
    assert code == 0, err
    assert f"Challenge:    {challenge} (wrapped by HSM key 'cli-aes')" in out
    assert "Possession:   proven (unwrap CKM_AES_KEY_WRAP)" in out
    record = ImportRecord.from_json((aes.folder / "cli-aes.import.json").read_bytes())
    made = json.loads(challenge.read_text())
    assert record.proof["method"] == "unwrap" and record.proof["algorithm"] == "CKM_AES_KEY_WRAP"
    assert record.proof["wrapped"] == made["wrapped"]
    answer = hashlib.sha256(bytes.fromhex(record.proof["unwrapped"])).hexdigest()
    assert answer == record.proof["challenge_sha256"] == made["challenge_sha256"]
    assert record.public_key_jwk is None and record.byok_sha256 == sha256_file(byok)
    assert aes.versions("cli-aes") == [record.attributes["version"]]


def test_aes_challenge_of_another_key_fails_after_the_import(
    capsys: pytest.CaptureFixture[str], aes: AesCli
) -> None:
    """The vault cannot unwrap key B's challenge with key A: one line that says A is imported
    and no record was written; the right challenge then proves the same import."""
    key_a, key_b = aes.byok("aes-a"), aes.byok("aes-b")
    base = ("import", "--local-vault", aes.vault_dir, "--name", "aes-a", "--byok", key_a,
            "--type", "oct-HSM", "--challenge")  # fmt: skip
    line = refused(capsys, *base, key_b.with_suffix(".challenge.json"))
    assert "could not unwrap the HSM's challenge" in line and "The key stays imported" in line
    assert not (aes.folder / "aes-a.import.json").exists()
    assert len(aes.versions("aes-a")) == 1
    code, out, err = run(capsys, *base, key_a.with_suffix(".challenge.json"))
    assert code == 0, err
    assert "Found the earlier import of" in out and "Possession:   proven (unwrap" in out
    assert len(aes.versions("aes-a")) == 1


def test_aes_import_without_challenge_says_not_proven(
    capsys: pytest.CaptureFixture[str], aes: AesCli
) -> None:
    byok = aes.byok("aes-unproven")
    code, out, err = run(capsys, "import", "--local-vault", aes.vault_dir, "--name",
                         "aes-unproven", "--byok", byok, "--type", "oct-HSM")  # fmt: skip
    assert code == 0, err
    assert "NOT proven: no challenge wrapped by the HSM was given" in out
    assert f"(give --challenge {byok.with_suffix('.challenge.json')})" in out
    record = ImportRecord.from_json((aes.folder / "aes-unproven.import.json").read_bytes())
    assert record.proof["method"] == "none"
    assert len(aes.versions("aes-unproven")) == 1


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("rsa", "--challenge proves an oct-HSM key, not RSA-HSM"),
        ("absent", "Cannot read the challenge record"),
        ("not-json", "is not JSON"),
        ("not-hex", "not hex"),
    ],
)
def test_bad_challenge_is_refused_before_the_import(
    capsys: pytest.CaptureFixture[str], aes: AesCli, case: str, message: str
) -> None:
    byok = aes.byok(f"aes-{case}")
    challenge, kind = byok.with_suffix(".challenge.json"), "oct-HSM"
    if case == "rsa":
        kind = "RSA-HSM"
    elif case == "absent":
        challenge.unlink()
    elif case == "not-json":
        challenge.write_text("{")
    else:
        challenge.write_text(challenge.read_text().replace('"wrapped": "', '"wrapped": "zz'))
    code, _, err = run(capsys, "import", "--local-vault", aes.vault_dir, "--name", f"aes-{case}",
                       "--byok", byok, "--type", kind, "--challenge", challenge)  # fmt: skip
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert aes.versions(f"aes-{case}") == []


# ---- refusals -------------------------------------------------------------------------------


def test_wrong_fingerprint_stops_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kek_files: Path, tmp_path: Path
) -> None:
    line = refused(capsys, "kek", "fetch", "--local-vault", kv_dir, "--name", "kek", "--out",
                   tmp_path / "k.pem", "--expect-fingerprint", "00" * 32)  # fmt: skip
    assert "does not match" in line
    assert list(tmp_path.iterdir()) == []


def test_malformed_fingerprint_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "kek", "fetch", "--local-vault", kv_dir, "--name", "kek", "--out",
                       tmp_path / "k.pem", "--expect-fingerprint", "abc")  # fmt: skip
    assert code == 2 and "not a SHA-256 fingerprint" in err


def test_existing_output_is_not_overwritten(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kek_files: Path, tmp_path: Path
) -> None:
    (tmp_path / "k.json").write_text("mine")
    line = refused(capsys, "kek", "fetch", "--local-vault", kv_dir, "--name", "kek", "--out",
                   tmp_path / "k.pem")  # fmt: skip
    assert "already exists" in line
    assert (tmp_path / "k.json").read_text() == "mine" and not (tmp_path / "k.pem").exists()


def test_kek_with_other_key_ops_refused(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kv: VaultConnection, tmp_path: Path
) -> None:
    signing = kv.key_client().create_rsa_key("signing", size=2048, hardware_protected=True)
    line = refused(capsys, "kek", "fetch", "--local-vault", kv_dir, "--name", "signing", "--out",
                   tmp_path / "k.pem")  # fmt: skip
    assert "exactly ['import']" in line
    # A package wrapped for such a key is refused before anything is sent.
    package = tmp_path / "p.byok"
    package.write_bytes(byok_file(signing.id, byok_ciphertext(kek_public_key(signing), b"x" * 80)))
    line = refused(capsys, "import", "--local-vault", kv_dir, "--name", "p", "--byok", package,
                   "--type", "EC-HSM", "--curve", "P-256")  # fmt: skip
    assert "exactly ['import']" in line
    assert versions(kv, "p") == []


def test_software_kek_refused(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kv: VaultConnection, tmp_path: Path
) -> None:
    kv.key_client().create_rsa_key("soft", size=2048, hardware_protected=False)
    line = refused(capsys, "kek", "fetch", "--local-vault", kv_dir, "--name", "soft", "--out",
                   tmp_path / "k.pem")  # fmt: skip
    assert "not HSM-backed" in line


def test_missing_kek_refused(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, tmp_path: Path
) -> None:
    line = refused(capsys, "kek", "fetch", "--local-vault", kv_dir, "--name", "nope", "--out",
                   tmp_path / "k.pem")  # fmt: skip
    assert "has no key nope" in line


def test_unreachable_vault_fails_fast(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    line = refused(capsys, "kek", "fetch", "--vault", f"https://127.0.0.1:{port}", "--name", "k",
                   "--out", tmp_path / "k.pem")  # fmt: skip
    assert "unreachable" in line
    assert time.monotonic() - started < 15


def test_wrong_token_refused(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kv: VaultConnection, tmp_path: Path
) -> None:
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in ("url", "ca.pem"):
        shutil.copy(kv_dir / name, stale / name)
    (stale / "token").write_text("expired-or-wrong")
    line = refused(capsys, "kek", "create", "--local-vault", stale, "--name", "kek-401")
    assert "refused the credentials" in line
    assert versions(kv, "kek-401") == []


def test_byok_for_another_vault_refused(
    capsys: pytest.CaptureFixture[str],
    kv_dir: Path,
    kv: VaultConnection,
    local_managed_hsm: LocalVault,
    tmp_path: Path,
) -> None:
    other = connect(local_vault_dir=local_managed_hsm.state_dir)
    foreign = other.key_client().create_rsa_key(
        "kek-foreign", size=2048, hardware_protected=True, key_operations=["import"]
    )
    package = tmp_path / "p.byok"
    package.write_bytes(byok_file(foreign.id, byok_ciphertext(kek_public_key(foreign), b"x" * 80)))
    line = refused(capsys, "import", "--local-vault", kv_dir, "--name", "foreign", "--byok",
                   package, "--type", "EC-HSM", "--curve", "P-256")  # fmt: skip
    assert "not on the target vault" in line
    assert versions(kv, "foreign") == []


def _ec_package(kek: object) -> bytes:
    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return byok_file(kek.id, byok_ciphertext(kek_public_key(kek), pkcs8))  # type: ignore[attr-defined]


def test_type_mismatch_refused(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kv: VaultConnection, kek_files: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    kek = kv.key_client().get_key("kek")
    package = tmp_path / "ec.byok"
    package.write_bytes(_ec_package(kek))
    for argv in (("--type", "RSA-HSM"), ("--type", "oct-HSM")):
        line = refused(capsys, "import", "--local-vault", kv_dir, "--name", "mixed", "--byok",
                       package, *argv)  # fmt: skip
        assert "is not a" in line
    assert versions(kv, "mixed") == []


def test_existing_name_needs_new_version(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kv: VaultConnection, kek_files: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    kek = kv.key_client().get_key("kek")
    first, second = tmp_path / "a" / "one.byok", tmp_path / "b" / "two.byok"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(_ec_package(kek))
    base = ("import", "--local-vault", kv_dir, "--name", "twice", "--type", "EC-HSM", "--curve",
            "P-256")  # fmt: skip
    assert run(capsys, *base, "--byok", first)[0] == 0
    line = refused(capsys, *base, "--byok", second)
    assert "already has a key named twice" in line and "--new-version" in line
    assert len(versions(kv, "twice")) == 1
    assert run(capsys, *base, "--byok", second, "--new-version")[0] == 0
    assert len(versions(kv, "twice")) == 2


def test_new_version_beside_an_earlier_import_gets_its_own_record(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, kv: VaultConnection, kek_files: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Both packages in one folder: the second import's default record does not collide."""
    kek = kv.key_client().get_key("kek")
    first, second = tmp_path / "again.byok", tmp_path / "again-v2.byok"
    for path in (first, second):
        path.write_bytes(_ec_package(kek))
    base = ("import", "--local-vault", kv_dir, "--name", "again", "--type", "EC-HSM", "--curve",
            "P-256")  # fmt: skip
    assert run(capsys, *base, "--byok", first)[0] == 0
    earlier = (tmp_path / "again.import.json").read_bytes()
    code, out, _ = run(capsys, *base, "--byok", second, "--new-version")
    assert code == 0 and f"Wrote {tmp_path / 'again.2.import.json'}" in out
    assert (tmp_path / "again.import.json").read_bytes() == earlier  # never overwritten
    kids = {json.loads((tmp_path / n).read_text())["kid"] for n in ("again.import.json",
            "again.2.import.json")}  # fmt: skip
    assert len(kids) == 2 and len(versions(kv, "again")) == 2


def test_vault_and_local_vault_must_agree(
    capsys: pytest.CaptureFixture[str], kv_dir: Path, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "kek", "fetch", "--local-vault", kv_dir, "--vault",
                       "https://contoso.vault.azure.net", "--name", "kek", "--out",
                       tmp_path / "k.pem")  # fmt: skip
    assert code == 2 and "is not the local vault" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--tag", "novalue"), "is not KEY=VALUE"),
        (("--expires", "tomorrow"), "not an ISO-8601 time"),
        (("--not-before", "2027-01-01T00:00:00"), "no time zone"),
        (("--exportable",), "needs a release policy"),
        (("--tag", "ceremony-import-id=1"), "set by the ceremony"),
    ],
)
def test_bad_import_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
    kv_dir: Path,
    kv: VaultConnection,
    kek_files: Path,
    tmp_path: Path,
    extra: tuple[str, ...],
    message: str,
) -> None:
    package = tmp_path / "p.byok"
    package.write_bytes(_ec_package(kv.key_client().get_key("kek")))
    code, _, err = run(capsys, "import", "--local-vault", kv_dir, "--name", "opts", "--byok",
                       package, "--type", "EC-HSM", "--curve", "P-256", *extra)  # fmt: skip
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert versions(kv, "opts") == []


def test_import_disabled_says_not_proven(
    capsys: pytest.CaptureFixture[str],
    kv_dir: Path,
    kv: VaultConnection,
    kek_files: Path,
    tmp_path: Path,
) -> None:
    package = tmp_path / "p.byok"
    package.write_bytes(_ec_package(kv.key_client().get_key("kek")))
    code, out, _ = run(capsys, "import", "--local-vault", kv_dir, "--name", "unproven", "--byok",
                       package, "--type", "EC-HSM", "--curve", "P-256", "--disabled")  # fmt: skip
    assert code == 0 and "NOT proven: the key was imported disabled" in out
    record = ImportRecord.from_json((tmp_path / "unproven.import.json").read_bytes())
    assert record.proof["method"] == "none" and record.attributes["enabled"] is False
