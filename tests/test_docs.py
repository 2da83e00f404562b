"""The documents say what the tool does: every file name the README's phase table and `ceremony
phases` show is in a rehearsal's workspace, and every command and option the README shows exists."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from ceremony.cli import build_parser
from ceremony.phases import PHASES
from ceremony.plan import load_plan
from tests.workbook_support import ROOT, ceremony, shared_rehearsal

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _present(workspace, name: str) -> bool:
    """A documented name in the workspace; `<name>` stands for a key of the plan (any one), and
    no other placeholder is allowed: the documents name what the tool writes."""
    keys = [k.name for k in load_plan(workspace / "plan.toml").keys]
    candidates = {name.rstrip("/").replace("<name>", key) for key in keys}
    return all("<" not in c for c in candidates) and any(
        (workspace / c).exists() for c in candidates
    )


def _table_outputs() -> list[str]:
    """The backquoted names in the last column of the README's phase table."""
    rows = [line for line in README.splitlines() if re.match(r"^\| 0[0-5] \|", line)]
    assert len(rows) == len(PHASES)
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[-2])]


def _commands() -> list[str]:
    """Every `ceremony ...` command line in the README's code, continuation lines joined."""
    code = [line[4:] for line in README.splitlines() if line.startswith("    ")]
    joined = "\n".join(code).replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.split("  #", 1)[0].strip()
        line = re.sub(r"^(\.venv/bin/)?", "", line)
        if line.startswith("ceremony "):
            found.append(line)
    return found


def _subcommand(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the deepest subcommand the words name, and the words after it."""
    parser = build_parser()
    while words:
        choices = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not choices or words[0] not in choices[0].choices:
            break
        parser, words = choices[0].choices[words[0]], words[1:]
    return parser, words


@pytest.fixture(scope="module")
def workspace():
    done = shared_rehearsal()
    assert done.returncode == 0, done.stderr[-3000:]
    return done.workspace


def test_every_output_the_readme_table_names_is_in_a_rehearsal_workspace(workspace):
    names = _table_outputs()
    assert "archive.tar" in names and "preflight.json" in names
    missing = [name for name in names if not _present(workspace, name)]
    assert missing == []


def test_ceremony_phases_names_only_files_a_rehearsal_leaves(workspace):
    printed = ceremony("phases")
    assert printed.returncode == 0
    for phase in PHASES:
        for name in phase.leaves:
            assert name in printed.stdout
            assert _present(workspace, name), f"phase {phase.number}: {name}"


def test_every_readme_command_and_option_exists():
    commands = _commands()
    assert any(c.startswith("ceremony rehearse --out DIR --resume") for c in commands)
    assert len(commands) > 20
    for command in commands:
        words = shlex.split(command.replace("[", " ").replace("]", " "))[1:]
        parser, rest = _subcommand(words)
        assert parser.prog != "ceremony", command  # names a real subcommand
        options = {o for a in parser._actions for o in a.option_strings}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=", 1)[0] in options, f"{command}: {word}"


def test_every_make_target_and_repository_path_the_readme_shows_exists():
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"\bmake (\w+)", README)):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
    for path in re.findall(r"\]\(([^)#]+)\)", README) + re.findall(
        r"(notebooks/\w+\.ipynb)", README
    ):
        if not path.startswith("http"):
            assert (ROOT / path).exists(), path
