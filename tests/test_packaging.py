"""The set-up files agree: environment.yml carries every dependency pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_every_pyproject_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    listed = {
        _name(line.strip()[2:])
        for line in (ROOT / "environment.yml").read_text().splitlines()
        if line.strip().startswith("- ")
    }
    assert wanted - listed == set(), "add these to environment.yml"
    assert {"softhsm", "opensc", "python"} <= listed


def test_the_readme_test_command_is_what_ci_runs() -> None:
    assert "make test" in (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1].strip() == "make test"


def test_the_wheel_lists_every_package_and_maps_the_workbook_into_it() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "ceremony").rglob("__init__.py")
    }
    workbook = {"ceremony.notebooks": "notebooks", "ceremony.templates": "templates"}
    assert set(setuptools["packages"]) == on_disk | set(workbook), "list them in pyproject.toml"
    assert setuptools["package-dir"] == workbook


def test_metadata_in_current_form_with_only_extras_that_exist() -> None:
    from importlib import metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"  # an SPDX expression, not a table
    for requirement in project["dependencies"]:
        extras = re.search(r"\[([^\]]*)\]", requirement)
        if extras:
            provided = metadata.metadata(_name(requirement)).get_all("Provides-Extra") or []
            wanted = {e.strip() for e in extras.group(1).split(",")}
            assert wanted <= set(provided), f"{requirement}: no such extra"
