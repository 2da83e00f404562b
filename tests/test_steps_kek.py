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
from ceremony.errors import RefusedError
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
    """A plan for kek_pem (pinned to `version`), phase 00 done, kek.pem placed by hand."""
    der = serialization.load_pem_public_key(kek_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    plan = write_plan(folder, fp=hashlib.sha256(der).hexdigest())
    if version:
        text = plan.read_text().replace('name = "kek"\n', f'name = "kek"\nversion = "{version}"\n')
        plan.write_text(text)
    options = RunOptions(phases="00", rehearsal=True, auto_confirm=True, qr=False)
    Runner(plan, folder / "ws", options, out=io.StringIO()).run()
    (folder / "ws" / "kek.pem").write_bytes(kek_pem)
    return plan, folder / "ws"


def test_carried_kek_is_recorded_from_the_file(tmp_path: Path, kek_pem: bytes) -> None:
    plan, ws = _after_preflight(tmp_path, kek_pem, VERSION)
    ctx = steps.begin("01", plan, ws, "rehearsal")
    result = steps.kek(ctx)
    record = json.loads((ws / "kek.json").read_text())
    fingerprint = result.items[0].sha256
    assert record["source"] == "file" and record["size"] == 2048
    assert record["kid"] == f"https://127.0.0.1:9/keys/kek/{VERSION}"
    assert record["public_key_sha256"] == record["out_of_band_sha256"] == fingerprint


def test_carried_kek_needs_a_pinned_version(tmp_path: Path, kek_pem: bytes) -> None:
    plan, ws = _after_preflight(tmp_path, kek_pem, None)
    ctx = steps.begin("01", plan, ws, "rehearsal")
    with pytest.raises(RefusedError, match=r"does not pin kek\.version"):
        steps.kek(ctx)
    assert not (ws / "kek.json").exists()
