"""Tests for ceremony.signer_check: signer key files are found beside the plan and checked before
the ceremony; at sealing, everyone who cannot sign is named with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from ceremony.plan import load_plan
from ceremony.signer_check import key_file_problems, signer_state
from ceremony.signers import create_file_signing_key, create_token_signing_key
from tests.test_runner import write_plan
from tests.workbook_support import ceremony


def plan_with_key_files(folder: Path, *, passphrase: str | None = None) -> Path:
    """The runner tests' plan (signers file:ada.key and file:wanda.key, relative to the plan),
    with key files beside it whose public halves the plan lists (encrypted with `passphrase`)."""
    folder.mkdir(parents=True, exist_ok=True)
    if passphrase:
        for name in ("ada", "wanda"):
            _, public = create_file_signing_key(folder / f"{name}.key", passphrase)
            (folder / f"{name}.pem").write_text(public)
    return write_plan(folder)


def test_key_files_are_found_beside_the_plan_whatever_the_directory(tmp_path, monkeypatch):
    path = plan_with_key_files(tmp_path / "plans")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a runner's kernel works in the workspace, not beside the plan
    plan = load_plan(path)
    assert [p.key_file for p in plan.people] == [path.parent / "ada.key", path.parent / "wanda.key"]
    assert key_file_problems(plan) == []
    states = [signer_state(p) for p in plan.people]
    assert all(s.signer is not None and s.reason == "" for s in states)
    checked = ceremony("plan", "check", str(path))
    assert checked.returncode == 0, checked.stderr
    assert f"signs with key file {path.parent / 'ada.key'}" in checked.stdout


def test_plan_check_names_every_key_file_that_would_stop_the_seal(tmp_path):
    path = plan_with_key_files(tmp_path / "plans")
    (path.parent / "wanda.key").rename(path.parent / "wanda.moved")
    workspace = path.parent  # the plan's folder chosen as the workspace: ada's key sits inside it
    done = ceremony("plan", "check", str(path), "--workspace", str(workspace))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "has 2 problems" in done.stderr
    assert "people[0].signer names" in done.stderr and "inside the workspace" in done.stderr
    assert f"people[1].signer names {path.parent / 'wanda.key'}, which cannot be read" in (
        done.stderr
    )
    # Another person's key under wanda's name: found before the ceremony, not at its end.
    (path.parent / "ada.key").rename(path.parent / "wanda.key")
    (plan,) = [load_plan(path)]
    problems = key_file_problems(plan)
    assert [p.where for p in problems] == ["people[0].signer", "people[1].signer"]
    assert "cannot be read" in problems[0].text
    assert "is not the one of wanda's public_key" in problems[1].text


def test_each_person_who_cannot_sign_is_named_with_the_reason(tmp_path, monkeypatch):
    path = plan_with_key_files(tmp_path / "plans", passphrase="open sesame")
    ada, wanda = load_plan(path).people
    monkeypatch.delenv("CEREMONY_PIN_ADA", raising=False)
    assert signer_state(ada).reason == (
        "no passphrase of the key file (CEREMONY_PIN_ADA is not set)"
    )
    monkeypatch.setenv("CEREMONY_PIN_WANDA", "not it")
    assert "wrong passphrase" in signer_state(wanda).reason
    monkeypatch.setenv("CEREMONY_PIN_WANDA", "open sesame")
    assert signer_state(wanda).signer is not None
    # Someone else's key file under ada's name: refused, saying so.
    (path.parent / "ada.key").unlink()
    (path.parent / "wanda.key").rename(path.parent / "ada.key")
    monkeypatch.setenv("CEREMONY_PIN_ADA", "open sesame")
    assert "does not match their public key in the plan" in signer_state(ada).reason
    (path.parent / "ada.key").unlink()
    assert signer_state(ada).reason.startswith(f"signer key file {path.parent / 'ada.key'}")
    assert "cannot be read" in signer_state(ada).reason


def test_a_token_signer_with_a_wrong_pin_is_named(hsm_token, tmp_path, monkeypatch):
    reference, public = create_token_signing_key(
        hsm_token.module_path, hsm_token.label, hsm_token.pin
    )
    (tmp_path / "ada.pem").write_text(public)
    plan = load_plan(write_plan(tmp_path))
    ada = plan.people[0].model_copy(update={"signer": reference})
    monkeypatch.delenv("CEREMONY_PIN_ADA", raising=False)
    assert signer_state(ada).reason == "no PIN of the signing token (CEREMONY_PIN_ADA is not set)"
    monkeypatch.setenv("CEREMONY_PIN_ADA", "not-the-pin")
    assert "PinIncorrect" in signer_state(ada).reason
    monkeypatch.setenv("CEREMONY_PIN_ADA", hsm_token.pin)
    assert signer_state(ada).signer is not None


@pytest.fixture(autouse=True)
def _no_inherited_pins(monkeypatch):
    for name in ("CEREMONY_PIN_ADA", "CEREMONY_PIN_WANDA"):
        monkeypatch.delenv(name, raising=False)
