"""Choosing the wrap path: `ceremony byok --wrap` and the plan's [hsm] wrap.

On SoftHSM2 2.7 both paths work and each is chosen explicitly; tokens with one path withheld
(SoftHSM's slots.mechanisms) show that the choice really takes that path; on Debian's 2.6 (no
native mechanism) `--wrap native` is refused before anything is generated. Every package is opened
independently with pyca/cryptography and the openssl CLI, to the exact key bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from ceremony.byok import parse_byok
from ceremony.evidence.records import ChallengeRecord
from tests.fixtures_hsm import (
    SoftwareKek,
    strip_der_zero_padding,
    unwrap_with_cryptography,
    unwrap_with_openssl,
)
from tests.softhsm27 import module_path, requires_softhsm27, token27
from tests.test_cli_hsm import KID, assert_refused, run_cli
from tests.workbook_support import clean_env, events

TOKEN, PIN = "wrap-paths", "user-2718"
SPECS = {
    "rsa": ("--type", "RSA-HSM", "--size", "2048"),
    "ec": ("--type", "EC-HSM", "--curve", "P-521"),
    "aes": ("--type", "oct-HSM", "--size", "256"),
}


def byok(env: dict[str, str], kek: SoftwareKek, out: Path, label: str, *extra: str):
    """`ceremony byok` in a child process on the 2.7 token of `env`."""
    return byok_on(module_path(), TOKEN, {**clean_env(), **env}, kek, out, label, *extra)


def byok_on(module, token: str, env: dict[str, str], kek: SoftwareKek, out: Path, label: str,
            *extra: str):  # fmt: skip
    """`ceremony byok` in a child process."""
    args = ["byok", "--module", module, "--token", token, "--kek-pem", str(kek.pem_path),
            "--kid", KID, "--label", label, "--out", str(out), *extra]  # fmt: skip
    return run_cli(args, env)


def assert_opens_to_the_key(out: Path, kek: SoftwareKek, workdir: Path) -> None:
    """Both independent implementations open the package to the same bytes, and those bytes are
    exactly the HSM's key: its public half (RSA, EC), or the key that wrapped the challenge."""
    package = parse_byok(out.read_bytes(), kek_bits=kek.bits)
    plain = unwrap_with_cryptography(package.ciphertext, kek)
    assert plain == unwrap_with_openssl(package.ciphertext, kek, workdir)
    challenge_file = out.with_suffix(".challenge.json")
    if challenge_file.exists():
        assert len(plain) == 32  # RFC 5649's length check held: exactly an AES-256 key
        record = ChallengeRecord.from_json(challenge_file.read_bytes())
        challenge = aes_key_unwrap(plain, bytes.fromhex(record.wrapped))
        assert hashlib.sha256(challenge).hexdigest() == record.challenge_sha256
        return
    assert strip_der_zero_padding(plain) == plain  # the DER's own length: nothing appended
    public = serialization.load_der_private_key(plain, password=None).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert pem == out.with_suffix(".pub.pem").read_bytes()


@pytest.fixture(scope="module")
def full27(tmp_path_factory) -> dict[str, str]:
    """A 2.7 token offering both paths."""
    return token27(tmp_path_factory.mktemp("full27"), TOKEN, PIN)


@requires_softhsm27
@pytest.mark.parametrize("kind", sorted(SPECS))
@pytest.mark.parametrize("path", ["native", "two-step"])
def test_each_path_chosen_explicitly_on_softhsm27_opens_to_the_exact_key(
    full27, software_kek, tmp_path, path, kind
):
    out = tmp_path / f"{kind}.byok"
    done = byok(full27, software_kek, out, f"{path}-{kind}", *SPECS[kind],
                "--wrap", path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # conformant: no rehearsal warning
    verdict = next(line for line in done.stdout.splitlines() if "wrap self-test" in line)
    assert "native CKM_RSA_AES_KEY_WRAP: passed" in verdict
    assert "two-step: CKM_AES_KEY_WRAP_PAD + CKM_RSA_PKCS_OAEP SHA-1, conformant" in verdict
    assert verdict.endswith(f"path {path} (chosen by --wrap)")
    assert_opens_to_the_key(out, software_kek, tmp_path)


@requires_softhsm27
def test_without_the_native_mechanism_native_is_refused_and_two_step_taken(tmp_path, software_kek):
    """A token that withholds CKM_RSA_AES_KEY_WRAP: --wrap native stops before generating (the
    same label is then free for --wrap two-step), and auto takes the two steps, saying why."""
    env = token27(tmp_path / "hsm", TOKEN, PIN, without="CKM_RSA_AES_KEY_WRAP")
    out = tmp_path / "ec.byok"
    refused = byok(env, software_kek, out, "k", *SPECS["ec"], "--wrap", "native")
    assert_refused(refused.returncode, refused.stderr, out, expect="Wrap path 'native' (chosen by "
                   "--wrap) needs the native CKM_RSA_AES_KEY_WRAP, but on this token it is not "
                   "offered.")  # fmt: skip
    taken = byok(env, software_kek, out, "k", *SPECS["ec"], "--wrap", "two-step")
    assert taken.returncode == 0, taken.stderr
    assert "path two-step (chosen by --wrap)" in taken.stdout
    assert_opens_to_the_key(out, software_kek, tmp_path)
    auto = tmp_path / "auto.byok"
    chosen = byok(env, software_kek, auto, "auto", *SPECS["aes"])
    assert chosen.returncode == 0, chosen.stderr
    assert "path two-step (auto: the native mechanism is not offered)" in chosen.stdout
    assert_opens_to_the_key(auto, software_kek, tmp_path)


@requires_softhsm27
def test_without_rfc_5649_two_step_is_refused_and_native_taken(tmp_path, software_kek):
    env = token27(tmp_path / "hsm", TOKEN, PIN, without="CKM_AES_KEY_WRAP_PAD")
    out = tmp_path / "rsa.byok"
    refused = byok(env, software_kek, out, "k", *SPECS["rsa"], "--wrap", "two-step")
    expect = "Wrap path 'two-step' (chosen by --wrap) needs a mechanism that performs RFC 5649"
    assert_refused(refused.returncode, refused.stderr, out, expect=expect)
    taken = byok(env, software_kek, out, "k", *SPECS["rsa"], "--wrap", "native")
    assert taken.returncode == 0, taken.stderr
    assert "two-step: no mechanism performs RFC 5649; path native" in taken.stdout
    assert_opens_to_the_key(out, software_kek, tmp_path)


def test_native_on_debian_softhsm26_is_refused_before_anything_is_generated(
    hsm_token, software_kek, tmp_path
):
    out = tmp_path / "ec.byok"
    on_debian = (hsm_token.module_path, hsm_token.label, hsm_token.environ(), software_kek, out)
    args = ("debian-native", "--type", "EC-HSM", "--curve", "P-256", "--rehearsal")
    refused = byok_on(*on_debian, *args, "--wrap", "native")
    assert_refused(refused.returncode, refused.stderr, out, out.with_suffix(".pub.pem"),
                   expect="Wrap path 'native' (chosen by --wrap) needs the native "
                   "CKM_RSA_AES_KEY_WRAP, but on this token it is not offered.")  # fmt: skip
    assert "Use wrap 'two-step' or 'auto'" in refused.stderr
    # Nothing was generated: the label is still free for the path the token has.
    taken = byok_on(*on_debian, *args, "--wrap", "two-step")
    assert taken.returncode == 0, taken.stderr
    assert "path two-step (chosen by --wrap)" in taken.stdout
    assert "REHEARSAL ONLY" in taken.stderr and "zero-pad-before-rfc5649" in taken.stderr


PLAN = """
[ceremony]
id = "wrap-path-choice"
purpose = "Phases 00-03 with the two-step wrap chosen in the plan."

[vault]
url = "{url}"
flavour = "managed-hsm"
local_state = "vault"

[kek]
name = "kek"
fingerprint = "{fingerprint}"

[hsm]
module = "{module}"
token = "{token}"
wrap = "two-step"
wrap_with_trusted = false

[[keys]]
name = "two-step-ec"
type = "EC-HSM"
curve = "P-384"
key_ops = ["sign", "verify"]

[[keys]]
name = "two-step-aes"
type = "oct-HSM"
size = 256
key_ops = ["wrapKey", "unwrapKey"]

[[people]]
name = "ada"
role = "administrator"
public_key = "people/ada.pub.pem"
signer = "file:people/ada.key"

[[people]]
name = "wanda"
role = "witness"
public_key = "people/wanda.pub.pem"
signer = "file:people/wanda.key"

[quorum]
administrator = 1
witness = 1
"""


@requires_softhsm27
def test_a_plan_choosing_two_step_records_both_verdicts_and_the_choice(tmp_path):
    """Phases 00-03 through the notebooks on 2.7, where the native mechanism passes: the plan's
    two-step is what phase 03 takes, and preflight and phase 03 both record each path's verdict
    and why this path, in the evidence the archive will seal."""
    from ceremony.localvault import LocalVault
    from ceremony.runner import Runner, RunOptions
    from ceremony.signers import create_file_signing_key
    from ceremony.vault import connect, create_kek

    env = token27(tmp_path / "softhsm", TOKEN, PIN)
    (tmp_path / "people").mkdir()
    for name in ("ada", "wanda"):
        _, public_pem = create_file_signing_key(tmp_path / "people" / f"{name}.key")
        (tmp_path / "people" / f"{name}.pub.pem").write_text(public_pem)
    with LocalVault(tmp_path / "vault", managed_hsm=True) as vault:
        kek = create_kek(connect(local_vault_dir=tmp_path / "vault"), "kek")
        plan = tmp_path / "plan.toml"
        plan.write_text(PLAN.format(url=vault.url, fingerprint=kek.fingerprint.hex,
                                    module=module_path(), token=TOKEN))  # fmt: skip
        options = RunOptions(phases="00-03", rehearsal=True, auto_confirm=True, qr=False,
                             kernel_env=env, collect_pins=False)  # fmt: skip
        Runner(plan, tmp_path / "ws", options, out=io.StringIO()).run()
    workspace = tmp_path / "ws"
    preflight = json.loads((workspace / "preflight.json").read_text())["self_test"]
    chosen = [e for e in events(workspace) if e["action"] == "wrap-path-chosen"]
    assert len(chosen) == 1 and chosen[0]["phase"] == "03"
    for record in (preflight, chosen[0]["data"]):
        assert record["native"] == "passed" and record["native_rsa_aes"] is True
        assert record["two_step"]["conformant"] is True and record["two_step"]["oaep_sha1"]
        assert record["two_step"]["mechanism"] == "CKM_AES_KEY_WRAP_PAD"
        assert (record["path"], record["chosen"]) == ("two-step", "two-step")
        assert record["reason"] == "chosen by the plan's [hsm] wrap"
        assert record["conformant"] is True
    assert "native CKM_RSA_AES_KEY_WRAP: passed" in preflight["verdict"]
    notebook = (workspace / "notebooks" / "03_wrap.html").read_text()
    assert "wrap path</td><td><code>two-step (chosen by the plan's [hsm] wrap)" in notebook


def test_preflight_refuses_a_plan_asking_for_native_on_debian_softhsm26(
    hsm_token, tmp_path, monkeypatch
):
    """Phase 00 on the offline side, with the plan's [hsm] wrap = "native" on a token without the
    native mechanism: refused in one sentence, recorded, and no preflight record written."""
    from ceremony.errors import HsmError
    from ceremony.steps.context import begin
    from ceremony.steps.preflight import preflight
    from tests.test_runner import write_plan

    monkeypatch.setenv("CEREMONY_PIN", hsm_token.pin)
    token = f'{hsm_token.label}"\nwrap = "native'
    plan = write_plan(tmp_path, module=hsm_token.module_path, token=token)
    ctx = begin("00", plan, tmp_path / "ws", "rehearsal")
    expected = (
        "Wrap path 'native' (chosen by the plan's [hsm] wrap) needs the native "
        "CKM_RSA_AES_KEY_WRAP, but on this token it is not offered."
    )
    with pytest.raises(HsmError) as refusal:
        preflight(ctx, side="offline")
    assert refusal.value.message == expected
    last = events(tmp_path / "ws")[-1]
    assert last["action"] == "phase-refused" and last["data"]["message"] == expected
    assert not (tmp_path / "ws" / "preflight.json").exists()
