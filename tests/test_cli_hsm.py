"""`ceremony byok` and `ceremony hsm info`: real runs, and every bad input refused cleanly."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from ceremony.byok import parse_byok
from ceremony.cli import main
from ceremony.evidence.records import ChallengeRecord
from ceremony.hsm import open_session
from tests.fixtures_hsm import make_software_kek, strip_der_zero_padding, unwrap_with_cryptography

KID = "https://127.0.0.1:8443/keys/kek/0123abcd"
ROOT = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ceremony", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def byok_args(token, kek_path: Path, out: Path, *extra: str, label: str = "cli-key") -> list[str]:
    return [
        "byok",
        "--module",
        token.module_path,
        "--token",
        token.label,
        "--kek-pem",
        str(kek_path),
        "--kid",
        KID,
        "--label",
        label,
        "--out",
        str(out),
        *extra,
    ]


def assert_refused(code: int, stderr: str, *files: Path, expect: str) -> None:
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ceremony: error: "), stderr
    assert expect in lines[0]
    assert "Traceback" not in stderr
    for path in files:
        assert not path.exists(), path
    leftovers = [p for f in files for p in f.parent.glob(f".{f.name}.*")]
    assert leftovers == []


def test_byok_end_to_end_in_a_subprocess(hsm_token, software_kek, tmp_path):
    out = tmp_path / "ec.byok"
    done = run_cli(
        byok_args(
            hsm_token,
            software_kek.pem_path,
            out,
            "--type",
            "EC-HSM",
            "--curve",
            "P-256",
            "--rehearsal",
            label="cli-ec",
        ),
        hsm_token.environ(),
    )
    assert done.returncode == 0, done.stderr
    assert "wrap self-test: CKM_AES_KEY_WRAP_PAD" in done.stdout
    assert "REHEARSAL ONLY" in done.stderr and "zero-pad-before-rfc5649" in done.stderr
    assert hsm_token.pin not in done.stdout + done.stderr
    package = parse_byok(out.read_bytes(), kek_bits=2048)
    assert package.kid == KID
    assert package.generator.startswith("byok-ceremony ") and "SoftHSM v2 firmware 2." in (
        package.generator
    )
    plain = strip_der_zero_padding(unwrap_with_cryptography(package.ciphertext, software_kek))
    public = serialization.load_der_private_key(plain, None).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (tmp_path / "ec.pub.pem").read_bytes() == pem


def test_byok_aes_writes_a_challenge_the_key_wrapped(
    hsm_token, software_kek, tmp_path, monkeypatch, capsys
):
    """Beside aes.byok, aes.challenge.json: pyca/cryptography unwraps its blob under the AES key
    recovered from the .byok, to the value whose SHA-256 it records (and not the value itself)."""
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    out = tmp_path / "aes.byok"
    args = byok_args(
        hsm_token,
        software_kek.pem_path,
        out,
        "--type",
        "oct-HSM",
        "--size",
        "256",
        "--rehearsal",
        label="cli-aes",
    )
    assert main(args) == 0
    package = parse_byok(out.read_bytes(), kek_bits=2048)
    aes_key = unwrap_with_cryptography(package.ciphertext, software_kek)
    assert len(aes_key) == 32
    assert not (tmp_path / "aes.pub.pem").exists()
    written = (tmp_path / "aes.challenge.json").read_bytes()
    record = ChallengeRecord.from_json(written)
    assert written == record.to_json()  # what phase 03 writes, byte for byte
    assert record.name == "cli-aes" and record.algorithm == "CKM_AES_KEY_WRAP"
    challenge = aes_key_unwrap(aes_key, bytes.fromhex(record.wrapped))
    assert len(challenge) == 32
    assert hashlib.sha256(challenge).hexdigest() == record.challenge_sha256
    assert challenge.hex().encode() not in written
    printed = capsys.readouterr().out
    assert "generated oct-HSM 256 key 'cli-aes'" in printed
    assert f"wrote {tmp_path / 'aes.challenge.json'}" in printed


def test_non_conformant_token_without_rehearsal_writes_nothing(
    hsm_token, software_kek, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    out = tmp_path / "strict.byok"
    code = main(
        byok_args(
            hsm_token,
            software_kek.pem_path,
            out,
            "--type",
            "EC-HSM",
            "--curve",
            "P-256",
            label="strict",
        )
    )
    assert_refused(
        code,
        capsys.readouterr().err,
        out,
        out.with_suffix(".pub.pem"),
        expect="zero-pad-before-rfc5649",
    )


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("wrong-pin", "PinIncorrect"),
        ("unknown-module", "does not exist"),
        ("missing-token", "No token with label 'absent'"),
    ],
)
def test_hsm_access_failures_in_a_subprocess(hsm_token, software_kek, tmp_path, case, expect):
    out = tmp_path / f"{case}.byok"
    args = byok_args(
        hsm_token, software_kek.pem_path, out, "--type", "EC-HSM", "--curve", "P-256", "--rehearsal"
    )
    env = hsm_token.environ()
    if case == "wrong-pin":
        env["CEREMONY_PIN"] = "not-the-pin"
    elif case == "unknown-module":
        args[args.index("--module") + 1] = "/nonexistent/libvendor-pkcs11.so"
    else:
        args[args.index("--token") + 1] = "absent"
    done = run_cli(args, env)
    assert_refused(done.returncode, done.stderr, out, expect=expect)


def ec_pem(tmp_path: Path) -> Path:
    path = tmp_path / "ec-kek.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("kek-not-rsa", "not an RSA public key"),
        ("kek-1024", "1024 bits"),
        ("kek-missing", "Cannot read the KEK public key"),
        ("unversioned-kid", "is not a /keys/<name>/<version> URL"),
        ("rsa-1024", "Size 1024 is not importable for RSA-HSM"),
        ("aes-512", "Size 512 is not importable for oct-HSM"),
        ("curve", "Curve 'P-192' is not importable"),
        ("type", "Key type 'DSA' cannot be imported"),
        ("not-byok", "must end in .byok"),
        ("no-pin", "No PIN"),
    ],
)
def test_bad_input_is_refused_in_process(
    hsm_token, software_kek, tmp_path, monkeypatch, capsys, case, expect
):
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    kek_path, kid, out = software_kek.pem_path, KID, tmp_path / "out.byok"
    key = ["--type", "RSA-HSM", "--size", "2048"]
    if case == "kek-not-rsa":
        kek_path = ec_pem(tmp_path)
    elif case == "kek-1024":
        kek_path = make_software_kek(tmp_path, 1024).pem_path
    elif case == "kek-missing":
        kek_path = tmp_path / "missing.pem"
    elif case == "unversioned-kid":
        kid = "https://contoso.vault.azure.net/keys/kek"
    elif case == "rsa-1024":
        key = ["--type", "RSA-HSM", "--size", "1024"]
    elif case == "aes-512":
        key = ["--type", "oct-HSM", "--size", "512"]
    elif case == "curve":
        key = ["--type", "EC-HSM", "--curve", "P-192"]
    elif case == "type":
        key = ["--type", "DSA", "--size", "2048"]
    elif case == "not-byok":
        out = tmp_path / "out.json"
    else:
        monkeypatch.delenv("CEREMONY_PIN")
    args = byok_args(hsm_token, kek_path, out, *key, "--rehearsal", label=f"bad-{case}")
    args[args.index("--kid") + 1] = kid
    code = main(args)
    assert_refused(code, capsys.readouterr().err, out, out.with_suffix(".pub.pem"), expect=expect)
    assert code != 0


def test_existing_label_is_refused_and_nothing_written(
    hsm_token, software_kek, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    first = tmp_path / "first.byok"
    key = ["--type", "EC-HSM", "--curve", "P-256", "--rehearsal"]
    assert main(byok_args(hsm_token, software_kek.pem_path, first, *key, label="dup")) == 0
    capsys.readouterr()
    second = tmp_path / "second.byok"
    code = main(byok_args(hsm_token, software_kek.pem_path, second, *key, label="dup"))
    assert_refused(
        code,
        capsys.readouterr().err,
        second,
        second.with_suffix(".pub.pem"),
        expect="already holds an object labelled 'dup'",
    )


def test_existing_output_file_is_refused_before_generating(
    hsm_token, software_kek, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    out = tmp_path / "exists.byok"
    out.write_bytes(b"precious")
    code = main(
        byok_args(
            hsm_token,
            software_kek.pem_path,
            out,
            "--type",
            "EC-HSM",
            "--curve",
            "P-256",
            "--rehearsal",
            label="never-made",
        )
    )
    err = capsys.readouterr().err
    assert code != 0 and "exists already" in err and "Traceback" not in err
    assert out.read_bytes() == b"precious"
    with_pin = main(
        [
            "hsm",
            "info",
            "--module",
            hsm_token.module_path,
            "--token",
            hsm_token.label,
            "--self-test",
            "--json",
        ]
    )
    assert with_pin == 0
    assert "never-made" not in capsys.readouterr().out  # and no key was generated:
    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as session:
        assert session.find_key("never-made") is None


def test_existing_challenge_output_is_refused_before_generating(
    hsm_token, software_kek, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    out, challenge = tmp_path / "taken.byok", tmp_path / "taken.challenge.json"
    challenge.write_bytes(b"precious")
    key = ["--type", "oct-HSM", "--size", "128", "--rehearsal"]
    code = main(byok_args(hsm_token, software_kek.pem_path, out, *key, label="never-aes"))
    assert_refused(code, capsys.readouterr().err, out, expect=f"{challenge} exists already")
    assert code == 2 and challenge.read_bytes() == b"precious"
    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as session:
        assert session.find_key("never-aes") is None


def test_hsm_info_lists_tokens_and_describes_one(hsm_token, monkeypatch, capsys):
    assert main(["hsm", "info", "--module", hsm_token.module_path]) == 0
    assert f"token: '{hsm_token.label}' SoftHSM project SoftHSM v2" in capsys.readouterr().out
    assert (
        main(
            ["hsm", "info", "--module", hsm_token.module_path, "--token", hsm_token.label, "--json"]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record["token"]["model"] == "SoftHSM v2"
    assert {"name": "CKM_RSA_PKCS_OAEP", "code": "0x9"} in record["mechanisms"]
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    assert (
        main(
            [
                "hsm",
                "info",
                "--module",
                hsm_token.module_path,
                "--token",
                hsm_token.label,
                "--self-test",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "self-test: CKM_AES_KEY_WRAP_PAD: zero-pad-before-rfc5649" in out
    assert "self-test: native CKM_RSA_AES_KEY_WRAP: not offered" in out
    assert "self-test: chosen two-step; wrap self-test: CKM_AES_KEY_WRAP_PAD" in out
    assert "NOT conformant (zero-pad-before-rfc5649)" in out


@pytest.mark.parametrize("which", [[], ["--token", "LABEL"], ["--token", "LABEL", "--self-test"]])
def test_hsm_info_json_carries_everything_its_text_shows(hsm_token, monkeypatch, capsys, which):
    """Each fact of the text form (tokens, mechanisms, self-test verdict) is in the JSON form."""
    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    args = ["hsm", "info", "--module", hsm_token.module_path]
    args += [hsm_token.label if a == "LABEL" else a for a in which]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    tokens = {t["label"]: t for t in record["tokens"]}
    token_lines = [line for line in text.splitlines() if line.startswith("token: ")]
    assert len(token_lines) == len(tokens) >= 1
    for line in token_lines:
        label = line.split("'")[1]
        assert f"serial {tokens[label]['serial']}" in line
        assert f"firmware {tokens[label]['firmware_version']}" in line
    if "--token" in which:
        assert record["token"] == tokens[hsm_token.label]
    mechanisms = " ".join(line.strip() for line in text.splitlines() if "CKM_" in line)
    for mechanism in record["mechanisms"]:
        assert mechanism["name"] in mechanisms
    chosen = [line for line in text.splitlines() if line.startswith("self-test: chosen")]
    if "--self-test" in which:
        test = record["self_test"]
        assert chosen == [f"self-test: chosen {test['path']}; {test['verdict']}"]
        assert "conformant" in test["verdict"]
    else:
        assert chosen == [] and "self_test" not in record


def test_hsm_info_unknown_module_in_a_subprocess(hsm_token):
    done = run_cli(["hsm", "info", "--module", "/nonexistent/lib.so"], hsm_token.environ())
    assert_refused(done.returncode, done.stderr, expect="does not exist")
