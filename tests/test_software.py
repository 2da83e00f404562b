"""ceremony.software: what each side ran, as its preflight records it; the evidence compares it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest

from ceremony import __version__, software
from ceremony.evidence import build_evidence, verify_path
from ceremony.evidence.records import PreflightRecord
from ceremony.software import BUNDLE_MARKER, Software, differences, running_software
from tests.evidence_workspace import CEREMONY_TIME, SOFTWARE, make_people, make_workspace

ROOT = Path(__file__).resolve().parents[1]


def test_this_checkout_is_named_by_its_commit_and_state() -> None:
    here = running_software()
    assert here.version == __version__ and here.kind == "checkout"
    assert here.install["path"] == str(ROOT)
    if (ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", here.install["commit"])
        assert isinstance(here.install["dirty"], bool)
    assert here.python.endswith(".".join(map(str, sys.version_info[:3])))
    assert here.distributions["byok-ceremony"] == __version__
    assert here.distributions["cryptography"] == metadata.version("cryptography")
    assert Software.from_dict(json.loads(json.dumps(here.to_dict()))) == here


@pytest.mark.parametrize(
    "change",
    [{"install": "bundle"}, {"install": {"changed_files": [1]}}, {"version": 1},
     {"distributions": ["x"]}, {"distributions": {"x": None}}],
)  # fmt: skip
def test_software_from_an_archive_is_checked(change: dict) -> None:
    with pytest.raises(ValueError):
        Software.from_dict({**SOFTWARE.to_dict(), **change})


def test_differences_name_what_differs() -> None:
    assert differences(SOFTWARE, SOFTWARE) == []
    other = replace(
        SOFTWARE,
        install={**SOFTWARE.install, "bundle_sha256": "77" * 32},
        distributions={**SOFTWARE.distributions, "cryptography": "45.0.0", "extra": "1"},
    )
    found = differences(SOFTWARE, other)
    assert len(found) == 2
    assert "5a" * 32 in found[0] and "77" * 32 in found[0]
    assert "cryptography 44.0.1 and 45.0.0" in found[1] and "extra absent and 1" in found[1]
    assert "0.1.0 and 0.2.0" in differences(SOFTWARE, replace(SOFTWARE, version="0.2.0"))[0]


def _fake_install(site: Path, *, direct_url: dict | None) -> metadata.Distribution:
    """A byok-ceremony installed the way pip leaves it: the package, dist-info, RECORD."""
    package = site / "ceremony"
    package.mkdir(parents=True)
    (package / "__init__.py").write_bytes(b"# installed\n")
    info = site / "byok_ceremony-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: byok-ceremony\nVersion: 0.1.0\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"# installed\n").digest()).rstrip(b"=")
    rows = f"ceremony/__init__.py,sha256={digest.decode()},12\n{info.name}/RECORD,,\n"
    (info / "RECORD").write_text(rows)
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return metadata.PathDistribution(info)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Point ceremony.software at a fake installation in tmp_path (no checkout beside it)."""

    def install(direct_url: dict | None = None) -> metadata.Distribution:
        dist = _fake_install(tmp_path / "site", direct_url=direct_url)
        monkeypatch.setattr(software, "PACKAGE", tmp_path / "site" / "ceremony")
        monkeypatch.setattr(software.metadata, "distribution", lambda name: dist)
        monkeypatch.setattr(software.sys, "prefix", str(tmp_path))
        return dist

    return install


def test_a_wheel_install_is_named_by_the_wheels_sha256(installed) -> None:
    url = {"url": "file:///media/byok_ceremony-0.1.0-py3-none-any.whl",
           "archive_info": {"hashes": {"sha256": "ab" * 32}}}  # fmt: skip
    installed(url)
    assert software.install_identity() == {
        "kind": "wheel", "wheel": "byok_ceremony-0.1.0-py3-none-any.whl",
        "wheel_sha256": "ab" * 32, "changed_files": [],
    }  # fmt: skip


def test_a_changed_installed_file_is_named(installed, tmp_path) -> None:
    installed({"url": "file:///src/byok", "dir_info": {}})
    (tmp_path / "site/ceremony/__init__.py").write_bytes(b"# changed after install\n")
    identity = software.install_identity()
    assert identity == {"kind": "directory", "source": "file:///src/byok",
                        "changed_files": ["ceremony/__init__.py"]}  # fmt: skip
    changed = replace(SOFTWARE, install=identity)
    assert changed.warnings(rehearsal=True) == [
        "byok-ceremony's installed files changed since installation: ceremony/__init__.py"
    ]
    dirty = replace(SOFTWARE, install={"kind": "checkout", "commit": "c" * 40, "dirty": True})
    assert dirty.warnings(rehearsal=True) == [] and len(dirty.warnings(rehearsal=False)) == 1


def test_the_bundle_marker_counts_only_for_the_installation_it_describes(
    installed, tmp_path
) -> None:
    installed(None)
    assert software.install_identity()["kind"] == "index"
    bundle = {"version": "0.1.0", "wheel": "w.whl", "wheel_sha256": "cd" * 32,
              "source_commit": "e" * 40, "source_dirty": False}  # fmt: skip
    marker = software.write_bundle_marker(bundle, "9f" * 32)
    assert marker == tmp_path / BUNDLE_MARKER
    identity = software.install_identity()
    assert identity["kind"] == "bundle" and identity["bundle_sha256"] == "9f" * 32
    assert identity["wheel_sha256"] == "cd" * 32 and identity["source_commit"] == "e" * 40
    with pytest.raises(FileExistsError):  # never written over
        software.write_bundle_marker(bundle, "00" * 32)
    # pip installed something else since: the marker no longer describes this installation
    record = tmp_path / "site/byok_ceremony-0.1.0.dist-info/RECORD"
    record.write_text(record.read_text() + "ceremony/new.py,,\n")
    assert software.install_identity()["kind"] == "index"


def _two_sided(tmp_path: Path, online: Software) -> Path:
    """A sealed workspace whose second side (online, no HSM) ran `online`."""
    root = tmp_path / "ws"
    make_workspace(root, [("only-ec", "EC-HSM", "P-256")])
    record = PreflightRecord(
        {"python": "3.11.2"}, {"hostname": "online-1"}, {}, None, True, [], online.to_dict()
    )
    (root / "preflight-online-1-20261128T090000Z.json").write_bytes(record.to_json())
    people, quorum = make_people(tmp_path / "keys", root)
    build_evidence(root, people, quorum, ceremony_time=CEREMONY_TIME)
    return root


def test_verify_shows_each_sides_software_and_flags_a_difference(tmp_path) -> None:
    online = replace(SOFTWARE, install={"kind": "checkout", "path": "/src", "commit": "c" * 40,
                                        "dirty": True})  # fmt: skip
    root = _two_sided(tmp_path, online)
    report = verify_path(root / "archive.tar")
    assert report.verified, report.first_failure  # a flag is not a failure
    shown = [c for c in report.checks if c.check == "software" and not c.flag]
    assert [c.subject for c in shown] == [
        "preflight.json", "preflight-online-1-20261128T090000Z.json"
    ]  # fmt: skip
    assert "offline bundle " + "5a" * 32 in shown[0].detail
    assert "c" * 40 in shown[1].detail and "uncommitted changes" in shown[1].detail
    assert len(report.flags) == 1 and "ran different software" in report.flags[0]
    assert "FLAG" in report.table()
    as_json = report.to_dict()
    assert as_json["flags"] == report.flags and len(as_json["software"]) == 2
    assert as_json["software"][1]["software"]["distributions"]["cryptography"] == "44.0.1"

    statement = json.loads((root / "evidence/statement.json").read_bytes())["predicate"]
    assert [s["host"] for s in statement["software"]] == ["offline-1", "online-1"]
    assert any("ran different software" in e for e in statement["exceptions"])
    html = (root / "evidence/report.html").read_text()
    assert "Software on each side" in html and "online-1, without the HSM" in html
    assert "offline bundle " + "5a" * 32 in html and "cryptography 44.0.1" in html

    done = subprocess.run(
        [sys.executable, "-m", "ceremony", "verify", str(root / "archive.tar")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "VERIFIED" in done.stdout
    assert "FLAG: offline-1 (with the HSM, preflight.json) and online-1" in done.stdout


def test_two_sides_with_the_same_software_raise_no_flag(tmp_path) -> None:
    report = verify_path(_two_sided(tmp_path, SOFTWARE) / "archive.tar")
    assert report.verified and report.flags == []
    assert len([c for c in report.checks if c.check == "software"]) == 2


def test_hostile_software_records_are_shown_on_one_line_or_flagged(tmp_path) -> None:
    forged = replace(SOFTWARE, version="0.1.0\nok      signature   evidence  Mallory")
    root = _two_sided(tmp_path, forged)
    record = root / "preflight.json"
    data = json.loads(record.read_bytes())
    data["software"]["install"] = {"kind": ["bundle"], "changed_files": [1]}
    record.write_text(json.dumps(data))  # the workspace is verified, not the archive: re-read
    report = verify_path(root)
    assert not report.verified  # preflight.json no longer has its signed digest
    table = report.table()
    assert len(table.splitlines()) == len(report.checks) + 1 and "Mallory" in table
    assert any("offline-1" in f and "no readable software identity" in f for f in report.flags)
