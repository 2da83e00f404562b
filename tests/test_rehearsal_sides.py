"""The two sides of the air gap kept apart: in `ceremony rehearse`, and in a two-machine run whose
online side has no PKCS#11 module at all."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ceremony.errors import RefusedError
from ceremony.netns import offline_air_gap
from ceremony.phases import PHASES
from ceremony.rehearsal_sides import carry, paper_record
from ceremony.runner import Runner, RunOptions
from tests import softhsm27
from tests.listeners import network_namespace
from tests.softhsm27 import requires_softhsm27
from tests.test_rehearsal import SIDED
from tests.workbook_support import PINS, ceremony, clean_env, events, shared_rehearsal

USER_PINS = {"CEREMONY_PIN", "CEREMONY_SO_PIN"}
SIGNER_PINS = {f"CEREMONY_PIN_{n}" for n in ("ADA", "CAROL", "CHEN", "WANDA")}


@pytest.fixture(scope="module")
def rehearsal():
    done = shared_rehearsal()
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def side_notes(workspace: Path) -> list[tuple[str, str, str]]:
    return [
        (e["phase"], e["data"]["side"], e["data"]["air_gap"])
        for e in events(workspace)
        if e["action"] == "note" and "side" in (e["data"] or {})
    ]


def test_each_phase_records_the_side_that_ran_it_and_how_it_was_cut_off(rehearsal):
    notes = side_notes(rehearsal.workspace)
    assert [(phase, side) for phase, side, _ in notes] == SIDED
    gap = offline_air_gap()
    for phase, side, how in notes:
        if side == "offline":
            assert how == gap.how
        elif phase == "05":
            assert "only the signers' own tokens" in how
        else:
            assert "no HSM configuration" in how and "no HSM PIN" in how
    if not gap.isolated:
        assert rehearsal.stdout.count(f"NOTE: {gap.how}") == 1  # said once, recorded per phase
    report = (rehearsal.workspace / "evidence" / "report.html").read_text()
    assert "Side of the air gap" in report and "offline: " in report


def test_each_sides_kernels_had_only_their_own_environment(rehearsal):
    """Read from /proc while the rehearsal ran: the HSM's PINs and SoftHSM directory only in
    offline kernels, in a network namespace of their own; the signers' only in phase 05's."""
    hsm_conf = str(rehearsal.root / "softhsm" / "softhsm2.conf")
    signers_conf = str(rehearsal.root / "signers" / "softhsm2.conf")
    kernels = rehearsal.kernels
    offline = {k for k in kernels if k.softhsm_conf == hsm_conf}
    signing = {k for k in kernels if k.softhsm_conf == signers_conf}
    online = {k for k in kernels if k.softhsm_conf is None}
    assert offline and signing and online and offline | signing | online == kernels
    assert all(k.pins == {"CEREMONY_PIN", "CEREMONY_SO_PIN"} for k in offline)
    assert all(k.pins == SIGNER_PINS for k in signing)
    assert all(k.pins == frozenset() for k in online)
    own = network_namespace(os.getpid())
    assert all(k.netns == own for k in signing | online)


NO_NAMESPACE = pytest.mark.skipif(
    not offline_air_gap().isolated,
    reason=f"no network namespace for the offline side here ({offline_air_gap().how}); run as "
    "root or allow unprivileged user namespaces (.ci/run runs as root)",
)


@NO_NAMESPACE
def test_the_offline_kernels_ran_in_a_network_namespace_of_their_own(rehearsal):
    own = network_namespace(os.getpid())
    hsm_conf = str(rehearsal.root / "softhsm" / "softhsm2.conf")
    offline = {k for k in rehearsal.kernels if k.softhsm_conf == hsm_conf}
    assert offline and all(k.netns != own for k in offline)
    (record,) = [json.loads(p.read_text()) for p in rehearsal.workspace.glob("preflight-*.json")]
    assert record["host"]["network"] == "no sign of a network"  # the vault did not answer


def test_each_side_preflighted_itself_and_the_online_side_reached_the_vault(rehearsal):
    online = json.loads((rehearsal.workspace / "preflight.json").read_text())
    (offline,) = [json.loads(p.read_text()) for p in rehearsal.workspace.glob("preflight-*.json")]
    assert online["host"]["side"] == "online" and online["host"]["network"] == "reaches the vault"
    assert offline["host"]["side"] == "offline" and offline["hsm"]["token"]


def test_the_workspace_crossed_the_gap_and_was_checked_on_arrival(rehearsal):
    """Carried online → offline → online: each arrival matched the head the other side's
    witnesses confirmed last, and the offline folder holds exactly the start of the story."""
    received = [
        (e["phase"], e["data"]["checkpoint"])
        for e in events(rehearsal.workspace)
        if e["action"] == "workspace-received"
    ]
    assert ("00", "01") in received and ("04", "03") in received
    offline = rehearsal.root / "offline" / "workspace" / "transcript.jsonl"
    online = (rehearsal.workspace / "transcript.jsonl").read_text()
    assert online.startswith(offline.read_text()) and len(online) > len(offline.read_text())


def test_a_workspace_whose_head_is_not_the_paper_record_is_refused(rehearsal, tmp_path):
    """The receiving side checks the medium against the words the other side wrote down."""
    medium = tmp_path / "medium"
    carry(rehearsal.root / "offline" / "workspace", medium, lambda _: None)
    words = paper_record(medium)
    plan = rehearsal.root / "plan.toml"

    def runner(paper: str) -> Runner:
        options = RunOptions(
            phases="04", rehearsal=True, auto_confirm=True, collect_pins=False, paper_record=paper
        )
        return Runner(plan, medium, options, out=io.StringIO())

    with pytest.raises(RefusedError, match="is not the one the witnesses wrote down"):
        runner("wrong words").run()
    runner(words).receive(PHASES[4])  # the right words are accepted, and recorded
    actions = [e["action"] for e in events(medium)[-2:]]
    assert actions == ["phase-refused", "workspace-received"]


def test_an_existing_token_is_used_and_everything_else_on_it_left_alone(tmp_path):
    """`--token`: a SoftHSM2 token made beforehand with someone else's key on it, as an HSM's
    test partition would be: the rehearsal verifies, and lists what it left."""
    module = shutil.which("softhsm2-util") and "/usr/lib/softhsm/libsofthsm2.so"
    conf = _user_softhsm(tmp_path)
    env = {"SOFTHSM2_CONF": str(conf), "CEREMONY_PIN": "123456", "CEREMONY_SO_PIN": "654321"}
    before = _objects(conf, module)
    done = ceremony(
        "rehearse", "--out", str(tmp_path / "r"), "--module", module, "--token", "partition",
        env=clean_env(**env),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Rehearsal complete and verified." in done.stdout
    left = done.stdout.split("Left on token 'partition' by this rehearsal")[1]
    names = [line.split("'")[1] for line in left.splitlines() if line.startswith("  - key")]
    assert len(names) == 3 and all(n.startswith("rehearsal-2") for n in names)
    after = _objects(conf, module)
    assert before <= after  # someone else's key is still there, unchanged
    assert {label for label, _ in after - before} == set(names)


def _user_softhsm(tmp_path: Path) -> Path:
    tokens = tmp_path / "user-tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {**clean_env(), "SOFTHSM2_CONF": str(conf)}
    init = ["softhsm2-util", "--init-token", "--free", "--label", "partition"]
    subprocess.run([*init, "--pin", "123456", "--so-pin", "654321"], env=env, check=True)
    keygen = ["pkcs11-tool", "--module", "/usr/lib/softhsm/libsofthsm2.so", "--token-label"]
    keygen += ["partition", "--login", "--pin", "123456", "--keygen", "--key-type", "AES:32"]
    subprocess.run([*keygen, "--label", "someone-elses"], env=env, check=True, capture_output=True)
    return conf


def _objects(conf: Path, module: str) -> set[tuple[str, str]]:
    """(label, attributes as pkcs11-tool lists them) of every object on the token."""
    env = {**clean_env(), "SOFTHSM2_CONF": str(conf)}
    listed = subprocess.run(
        ["pkcs11-tool", "--module", module, "--token-label", "partition", "--login", "--pin",
         "123456", "--list-objects"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    blocks: list[list[str]] = []
    for line in filter(str.strip, listed.splitlines()):
        if not line.startswith(" "):  # an object's heading; its attributes are indented
            blocks.append([])
        blocks[-1].append(line.strip())
    found = set()
    for block in blocks:
        label = next(ln.split(":", 1)[1].strip() for ln in block if ln.startswith("label:"))
        found.add((label, "\n".join(block)))
    return found


@pytest.mark.parametrize(
    ("arguments", "pins", "says"),
    [
        (["--module", "/etc/passwd"], {}, "could not be loaded as a PKCS#11 module"),
        (["--module", "/no/such/lib.so", "--token", "t"], PINS, "does not exist"),
        (["--module", "/usr/lib/softhsm/libsofthsm2.so", "--token", "absent"], PINS, "No token"),
        (["--module", "/usr/lib/softhsm/libsofthsm2.so", "--token", "partition"], PINS, "PIN"),
        (
            ["--module", "/usr/lib/softhsm/libsofthsm2.so", "--token", "partition"],
            {},
            "CEREMONY_PIN",
        ),
        (["--token", "partition"], PINS, "--token needs --module"),
    ],
    ids=["not-pkcs11", "unreachable-module", "no-such-token", "wrong-pin", "no-pin", "no-module"],
)
def test_set_up_refusals_are_one_sentence_and_leave_nothing(tmp_path, arguments, pins, says):
    conf = _user_softhsm(tmp_path)
    out = tmp_path / "r"
    done = ceremony(
        "rehearse", "--out", str(out), *arguments,
        env=clean_env(SOFTHSM2_CONF=str(conf), **pins),
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ceremony: error: ") and says in line
    assert not out.exists()  # the same --out can be given again


def test_two_machines_the_online_one_without_any_pkcs11_module(tmp_path, monkeypatch):
    """The README's two-machine order with `ceremony run`'s own PIN rules: the plan's module is
    absent while phases 00-01, 04 and 05 run (nothing to load, no CEREMONY_PIN anywhere), present
    only for the offline phases; phase 05 has only the signers' tokens and PINs."""
    from ceremony import rehearsal
    from ceremony.localvault import LocalVault
    from ceremony.softhsm import SoftHsm, find_module

    link = tmp_path / "vendor" / "libhsm.so"  # the plan's module: there only on the HSM's side
    link.parent.mkdir()
    link.symlink_to(find_module())
    setup = rehearsal.Setup(
        str(link),
        rehearsal.HSM_TOKEN,
        SoftHsm(tmp_path / "softhsm").conf_path,
        SoftHsm(tmp_path / "signers").conf_path,
    )
    with LocalVault(tmp_path / "vault", managed_hsm=True) as vault:
        kek = rehearsal._create_kek(tmp_path, vault.url, lambda _: None)
        people, token = rehearsal._provision(tmp_path, setup, False, PINS, lambda _: None)
        rehearsal._write_plan(tmp_path, vault.url, people, kek, None, setup, token.native_rsa_aes)
        online, offline = tmp_path / "online-ws", tmp_path / "offline-ws"
        signers = {v: PINS[v] for v in SIGNER_PINS}
        legs = [
            ("00-01", online, {}, False),
            ("02-03", offline, {"SOFTHSM2_CONF": str(setup.hsm_conf), **_user_pins()}, True),
            ("04", online, {}, False),
            ("05", online, {"SOFTHSM2_CONF": str(setup.signers_conf), **signers}, False),
        ]
        monkeypatch.setattr("sys.stdin.isatty", lambda: False)  # nobody to ask a PIN of
        source = online
        for phases, workspace, env, hsm_side in legs:
            for variable in ("SOFTHSM2_CONF", *USER_PINS, *SIGNER_PINS):
                monkeypatch.delenv(variable, raising=False)
            for variable, value in env.items():
                monkeypatch.setenv(variable, value)
            if hsm_side != link.exists():
                link.symlink_to(find_module()) if hsm_side else link.unlink()
            if source != workspace and source.exists():
                carry(source, workspace, lambda _: None)
            options = RunOptions(phases=phases, rehearsal=True, auto_confirm=True, qr=False)
            Runner(tmp_path / "plan.toml", workspace, options, out=io.StringIO()).run()
            source = workspace
    found = events(online)
    started = [e["phase"] for e in found if e["action"] == "phase-started"]
    confirmed = [e["phase"] for e in found if e["action"] == "checkpoint-confirmed"]
    assert started == confirmed == [number for number, _ in SIDED]
    from ceremony.evidence import verify_path

    assert verify_path(online / "archive.tar").verified


def _user_pins() -> dict[str, str]:
    return {v: PINS[v] for v in USER_PINS}


def test_a_strict_rehearsal_on_a_deviating_token_stops_before_generating(tmp_path):
    """Debian's SoftHSM2 2.6 zero-pads in its RFC 5649 wrap: `--strict` refuses it in the
    offline side's preflight, naming the deviation and what to use, and no key is made."""
    root = tmp_path / "r"
    done = ceremony("rehearse", "--out", str(root), "--strict", env=clean_env(**PINS))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "Phase 00 preflight stopped" in line and "zero-pad-before-rfc5649" in line
    assert "SoftHSM2 2.7.0" in line
    found = events(root / "offline" / "workspace")
    assert [e["phase"] for e in found if e["action"] == "phase-refused"] == ["00"]
    assert not [e for e in found if e["action"].startswith("key-")]


@requires_softhsm27
def test_a_strict_rehearsal_on_the_two_step_path_verifies(tmp_path):
    """`--wrap two-step` on SoftHSM2 2.7: the plan asks for it (and so gives up wrap-with-
    trusted, saying so), phase 03 takes the two steps although native passes, and the archive
    verifies with a strict local vault."""
    import tomllib

    root = tmp_path / "r"
    done = ceremony(
        "rehearse", "--out", str(root), "--module", softhsm27.module_path(), "--strict",
        "--wrap", "two-step", env=clean_env(**PINS),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    hsm = tomllib.loads((root / "plan.toml").read_text())["hsm"]
    assert hsm["wrap"] == "two-step" and hsm["wrap_with_trusted"] is False
    (chosen,) = [e["data"] for e in events(root / "workspace") if e["action"] == "wrap-path-chosen"]
    assert chosen["path"] == "two-step" and chosen["native"] == "passed"
    assert not [e for e in events(root / "workspace") if e["action"] == "kek-trusted"]
