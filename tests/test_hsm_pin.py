"""ceremony.hsm.pin: the PIN comes from CEREMONY_PIN or a hidden prompt, nowhere else."""

from __future__ import annotations

import sys

import pytest

from ceremony.errors import UsageError
from ceremony.hsm import pin as pin_module
from ceremony.hsm import read_pin


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv("CEREMONY_PIN", "from-env")
    monkeypatch.setattr(pin_module.getpass, "getpass", lambda prompt: pytest.fail("prompted"))
    assert read_pin() == "from-env"


def test_hidden_prompt_on_a_terminal(monkeypatch):
    monkeypatch.delenv("CEREMONY_PIN", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    prompts = []
    monkeypatch.setattr(
        pin_module.getpass, "getpass", lambda prompt: prompts.append(prompt) or "typed"
    )
    assert read_pin() == "typed"
    assert prompts == ["HSM user PIN (hidden): "]


def test_no_environment_and_no_terminal_is_refused(monkeypatch):
    monkeypatch.delenv("CEREMONY_PIN", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    with pytest.raises(UsageError, match="CEREMONY_PIN is not set"):
        read_pin()


def test_empty_typed_pin_is_refused(monkeypatch):
    monkeypatch.delenv("CEREMONY_PIN", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(pin_module.getpass, "getpass", lambda prompt: "")
    with pytest.raises(UsageError, match="empty PIN"):
        read_pin()


def test_cli_has_no_pin_argument():
    from ceremony.cli import build_parser

    parser = build_parser()
    for args in (["byok", "--help"], ["hsm", "info", "--help"]):
        with pytest.raises(SystemExit):
            parser.parse_args(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["hsm", "info", "--pin", "1234"])
