"""Tests for notebooks/: thin, explained, parameterized without secrets, error-free when run."""

from __future__ import annotations

import ast
import subprocess
import sys

import nbformat
import pytest

from ceremony.phases import PHASES
from ceremony.plan import SECRET_WORDS
from tests.workbook_support import PINS, ROOT, clean_env, shared_rehearsal

NOTEBOOKS = ROOT / "notebooks"
PARAMETERS = {"plan", "workspace", "mode"}


def load(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def parameter_cells(nb) -> list:
    return [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]


def test_one_notebook_per_phase():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == [p.notebook for p in PHASES]


@pytest.mark.parametrize("name", [p.notebook for p in PHASES])
def test_notebook_shape(name):
    nb = load(name)
    nbformat.validate(nb)
    (params,) = parameter_cells(nb)
    tree = ast.parse(params.source)
    assigned = {t.id for node in tree.body for t in node.targets}
    assert assigned == parameters_of(name)
    for node in tree.body:
        assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    assert not any(word in SECRET_WORDS for word in assigned)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("## Why this step exists", "what the witnesses check", "When it fails"):
        assert heading in text
    code = [c for c in nb.cells if c.cell_type == "code" and c not in parameter_cells(nb)]
    assert len(code) == 3
    for cell in code:  # one short call into the package each, no logic
        lines = [line for line in cell.source.splitlines() if line.strip()]
        assert len(lines) <= 2
        assert not any(
            line.lstrip().startswith(("for ", "if ", "while ", "def ")) for line in lines
        )
    assert code[0].source.endswith(f'steps.begin("{name[:2]}", plan, workspace, mode)')
    assert code[-1].source == "steps.complete(ctx)"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def parameters_of(notebook: str) -> set[str]:
    """Every notebook takes the plan, workspace and mode; phase 00, which runs on each side of
    the air gap, is also told which side."""
    return PARAMETERS | ({"side"} if notebook.startswith("00") else set())


@pytest.fixture(scope="module")
def rehearsal():
    done = shared_rehearsal()
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_executed_notebooks_have_no_errors_and_no_pins(rehearsal):
    executed = sorted((rehearsal.workspace / "notebooks").glob("*.ipynb"))
    executed += sorted((rehearsal.workspace / ".after-seal" / "notebooks").glob("*.ipynb"))
    # Each side ran its own phase 00; the second side's notebook is kept beside the first's.
    expected = [PHASES[0].notebook.replace(".ipynb", ".2.ipynb")] + [p.notebook for p in PHASES]
    assert [p.name for p in executed] == sorted(expected[:-1]) + expected[-1:]
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert outputs and not [o for o in outputs if o.output_type == "error"], path
        (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        tree = ast.parse(injected.source)
        assert {t.id for node in tree.body for t in node.targets} == parameters_of(path.name)
        text = path.read_text()
        assert not any(pin in text for pin in PINS.values()), path
        assert path.with_suffix(".html").exists()


def test_a_notebook_runs_on_its_own_with_plain_papermill(rehearsal, tmp_path):
    """papermill NB OUT -p plan PLAN -p workspace DIR, with the PIN in the environment only."""
    output = tmp_path / "00.ipynb"
    conf = rehearsal.root / "softhsm" / "softhsm2.conf"
    env = clean_env(SOFTHSM2_CONF=str(conf), CEREMONY_PIN=PINS["CEREMONY_PIN"])
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOKS / "00_preflight.ipynb"), str(output),
         "-p", "plan", str(rehearsal.root / "plan.toml"), "-p", "workspace",
         str(tmp_path / "ws"), "-p", "mode", "rehearsal", "--no-progress-bar"],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    nb = nbformat.read(output, as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert (tmp_path / "ws" / "preflight.json").exists()
    assert PINS["CEREMONY_PIN"] not in output.read_text()
