"""resources: where the workbook's own notebooks and templates are, for every way it is installed.

The one place that knows: inside the installed package (a wheel or the offline bundle carries
them as ceremony/notebooks and ceremony/templates) or beside the package in a checkout. Never looks
in the working directory or the workspace: the notebooks executed are the installation's own.
"""

from __future__ import annotations

from pathlib import Path

from ceremony.errors import UsageError

PACKAGE = Path(__file__).resolve().parent
NOTEBOOKS, TEMPLATES = "notebooks", "templates"


def workbook_folder(name: str) -> Path:
    """The folder `name` ("notebooks" or "templates") of this installation of the workbook.

    A wheel holds it inside the package; a checkout (editable install included) holds it at the
    top of the repository, beside the package. UsageError when neither is there."""
    installed = PACKAGE / name
    checkout = PACKAGE.parent / name
    if installed.is_dir():
        return installed
    if checkout.is_dir() and (PACKAGE.parent / "pyproject.toml").is_file():
        return checkout
    raise UsageError(
        f"This installation of the workbook has no {name} (looked in {installed} and {checkout}).",
        "Reinstall byok-ceremony from its wheel or offline bundle, or use a complete checkout.",
    )


def notebooks_dir() -> Path:
    """The folder holding the six phase notebooks."""
    return workbook_folder(NOTEBOOKS)


def notebook(file_name: str) -> Path:
    """One of the workbook's notebooks by file name (e.g. "00_preflight.ipynb"); must exist."""
    path = notebooks_dir() / file_name
    if not path.is_file():
        raise UsageError(
            f"The workbook's notebook {path} is missing.",
            "Reinstall byok-ceremony from its wheel or offline bundle, or use a complete checkout.",
        )
    return path


def templates_dir() -> Path:
    """The folder holding the report template, the sample plans and the rehearsal plan."""
    return workbook_folder(TEMPLATES)
