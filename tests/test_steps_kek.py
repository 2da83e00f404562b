"""Phase 01 with a KEK carried in as kek.pem (`az keyvault key download`): no vault is contacted."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ceremony import steps
from ceremony.errors import PlanError, RefusedError
from ceremony.plan import load_plan
from ceremony.runner import Runner, RunOptions
from tests.test_runner import write_plan

VERSION = "0123abcd"


@pytest.fixture(scope="module")
def kek_pem() -> bytes:
    public = rsa.generate_private_key(65537, 2048).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _after_preflight(folder: Path, kek_pem: bytes, version: str | None) -> tuple[Path, Path]:
    """A plan naming kek.pem beside it (pinned to `version`), and phase 00 done."""
    der = serialization.load_pem_public_key(kek_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    plan = write_plan(folder, fp=hashlib.sha256(der).hexdigest())
    (folder / "kek.pem").write_bytes(kek_pem)
    pinned = f'version = "{version}"\n' if version else ""
    text = plan.read_text().replace('name = "kek"\n', f'name = "kek"\nfile = "kek.pem"\n{pinned}')
    plan.write_text(text)
    if version:
        options = RunOptions(phases="00", rehearsal=True, auto_confirm=True, qr=False)
        Runner(plan, folder / "ws", options, out=io.StringIO()).run()
    return plan, folder / "ws"


def test_carried_kek_is_read_from_the_file_the_plan_names(tmp_path: Path, kek_pem: bytes) -> None:
    plan, ws = _after_preflight(tmp_path, kek_pem, VERSION)
    ctx = steps.begin("01", plan, ws, "rehearsal")
    result = steps.kek(ctx)
    record = json.loads((ws / "kek.json").read_text())
    fingerprint = result.items[0].sha256
    assert record["source"] == "file" and record["size"] == 2048
    assert record["kid"] == f"https://127.0.0.1:9/keys/kek/{VERSION}"
    assert record["public_key_sha256"] == record["out_of_band_sha256"] == fingerprint
    assert (ws / "kek.pem").read_bytes() == kek_pem


def test_carried_kek_needs_a_pinned_version(tmp_path: Path, kek_pem: bytes) -> None:
    plan, _ = _after_preflight(tmp_path, kek_pem, None)
    with pytest.raises(PlanError, match=r"kek\.file is set but kek\.version is not"):
        load_plan(plan)


def test_a_kek_placed_in_the_workspace_by_hand_is_refused(tmp_path: Path, kek_pem: bytes) -> None:
    """The medium is no way in: a kek.pem nobody recorded stops phase 01 before it is read."""
    plan, ws = _after_preflight(tmp_path, kek_pem, VERSION)
    (ws / "kek.pem").write_bytes(kek_pem)
    with pytest.raises(RefusedError, match="not accounted for by the transcript"):
        steps.begin("01", plan, ws, "rehearsal")
