"""The README's recipe for auditors without this tool: run as written, with bash, openssl and
coreutils alone, against a sealed archive and the reviewed plan."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.evidence_workspace import make_people
from tests.fixtures_evidence import SealedCeremony

README = Path(__file__).resolve().parent.parent / "README.md"


def _recipe() -> str:
    text = README.read_text()
    block = re.search(r"<!-- auditor-recipe -->\n```sh\n(.*?)```\n<!-- end auditor-recipe -->",
                      text, re.DOTALL)  # fmt: skip
    assert block, "the README's auditor recipe is missing"
    return block.group(1)


def _run(sealed: SealedCeremony, folder: Path, keys_from: Path) -> subprocess.CompletedProcess:
    folder.mkdir()
    shutil.copy(sealed.result.archive_path, folder / "archive.tar")
    shutil.copy(sealed.root / "plan.toml", folder / "plan.toml")
    (folder / "reviewed").mkdir()
    shutil.copy(sealed.root / "plan.toml", folder / "reviewed/plan.toml")
    shutil.copytree(keys_from, folder / "reviewed/people")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", _recipe()], cwd=folder,
                          capture_output=True, text=True, check=False)  # fmt: skip


def test_the_recipe_verifies_a_genuine_archive(sealed_ceremony: SealedCeremony, tmp_path) -> None:
    done = _run(sealed_ceremony, tmp_path / "genuine", sealed_ceremony.root / "people")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sealed_ceremony.result.archive_sha256 in done.stdout
    assert done.stdout.count("Verified OK") == 4  # alice, bob, wendy, ada; audrey does not sign
    assert "audrey.pub.pem: no signature" in done.stdout
    assert ": FAILED" not in done.stdout and done.stdout.count(": OK") > 10


def test_the_recipe_counts_no_signature_by_other_keys(
    sealed_ceremony: SealedCeremony, tmp_path
) -> None:
    strangers, _ = make_people(tmp_path / "strangers")
    keys = tmp_path / "stranger-keys"
    keys.mkdir()
    for person in strangers:
        (keys / f"{person.name}.pub.pem").write_text(person.public_key_pem)
    done = _run(sealed_ceremony, tmp_path / "other", keys)
    assert "Verified OK" not in done.stdout
    assert done.stdout.count("no signature") == 5
