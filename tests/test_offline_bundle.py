"""offline/: the bundle is built, verified and installed with no network, and the installed copy
rehearses a whole ceremony outside the checkout, its evidence naming the bundle's identity."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.workbook_support import PINS, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
# Brings the loopback interface up inside a fresh network namespace (the local vault listens
# there), then runs the command given: no route leaves the machine.
LOOPBACK_UP = """
import fcntl, os, socket, struct, sys
request = struct.pack("16sH14s", b"lo", 0, b"")
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, request))[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))
os.execv(sys.argv[1], sys.argv[1:])
"""


def _no_network() -> list[str]:
    """The command prefix that runs a command in a new network namespace with no network: as
    root `unshare -n`, else in a user namespace of its own; pytest.skip (reason printed) if none."""
    if shutil.which("unshare") is None:
        pytest.skip("no network namespace to install in: unshare (util-linux) is not installed")
    problems = []
    for prefix in (["unshare", "-n"], ["unshare", "-r", "-n"]):
        done = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return prefix
        problems.append(f"{' '.join(prefix)}: {done.stderr.strip() or done.returncode}")
    pytest.skip(f"no network namespace to install in ({'; '.join(problems)})")


def _hostile_pip_config(base: Path) -> dict[str, str]:
    """An environment whose pip configuration, if honoured, would make the install fail: every
    file and variable says "dry run", "install elsewhere" and "use this index"."""
    config = "[global]\nindex-url = http://192.0.2.1/simple\n[install]\ndry-run = true\n"
    for folder in (base / "home/.config/pip", base / "xdg/pip"):
        folder.mkdir(parents=True)
        (folder / "pip.conf").write_text(config)
    (base / "pip.conf").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "CEREMONY_PIN"))}
    return {
        **env,
        "HOME": str(base / "home"),
        "XDG_CONFIG_DIRS": str(base / "xdg"),
        "PIP_CONFIG_FILE": str(base / "pip.conf"),
        "PIP_INDEX_URL": "http://192.0.2.1/simple",
        "PIP_TARGET": str(base / "elsewhere"),
        "PIP_DRY_RUN": "1",
        "PYTHON": str(PYTHON),
    }


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make bundle`'s command, into a temporary folder; the unpacked bundle."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "offline.build", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (tar,) = out.glob("byok-ceremony-*-offline.tar")
    identity = done.stdout.split("preflight:\n", 1)[1].split()[0]
    with tarfile.open(tar) as archive:
        members = archive.getmembers()
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(members[0].mtime, 0, 0, "")}
        assert members[0].name == tar.name.removesuffix(".tar")  # one folder holds it all
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python 3.11.4+
        archive.extractall(out, **safe)  # type: ignore[arg-type]
    unpacked = out / tar.name.removesuffix(".tar")
    assert hashlib.sha256((unpacked / "SHA256SUMS").read_bytes()).hexdigest() == identity
    return unpacked


def _project_wheel(bundle: Path) -> Path:
    return bundle / "wheels" / json.loads((bundle / "bundle.json").read_text())["wheel"]


def test_the_project_wheel_is_reproducible_and_carries_the_workbook(bundle, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "offline.build", "--wheel-only", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wheel = _project_wheel(bundle)
    assert (tmp_path / wheel.name).read_bytes() == wheel.read_bytes()  # SOURCE_DATE_EPOCH
    names = zipfile.ZipFile(wheel).namelist()
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    templates = sorted(
        p.relative_to(ROOT / "templates").as_posix()
        for p in (ROOT / "templates").rglob("*")
        if p.is_file()
    )
    assert [n for n in names if n.startswith("ceremony/notebooks/")] == [
        f"ceremony/notebooks/{n}" for n in notebooks
    ]
    assert sorted(n for n in names if n.startswith("ceremony/templates/")) == [
        f"ceremony/templates/{n}" for n in templates
    ]
    assert not any(n.startswith(("tests/", "offline/", "bench/")) for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA")
    assert b"License-Expression: Apache-2.0" in metadata and b"pkcs11]" not in metadata
    lock = (bundle / "requirements.lock").read_text()
    for each in (bundle / "wheels").glob("*.whl"):
        assert hashlib.sha256(each.read_bytes()).hexdigest() in lock


def test_the_bundle_installs_offline_and_rehearses_outside_the_checkout(bundle, tmp_path) -> None:
    no_network = _no_network()
    identity = hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()
    env = _hostile_pip_config(tmp_path / "config")
    target = tmp_path / "installed"
    elsewhere = tmp_path / "elsewhere-cwd"
    elsewhere.mkdir()
    done = subprocess.run(
        [*no_network, "sh", str(bundle / "install.sh"), str(target)],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Bundle identity (SHA-256 of SHA256SUMS): {identity}" in done.stdout
    assert not (tmp_path / "config/elsewhere").exists()  # PIP_TARGET was ignored

    ceremony = str(target / "bin" / "ceremony")
    run_env = {k: v for k, v in env.items() if not k.startswith(("PIP_", "PYTHON"))}
    where = subprocess.run(
        [str(target / "bin/python"), "-c", "import ceremony; print(ceremony.__file__)"],
        cwd=elsewhere, env=run_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(target)), where.stdout

    out = tmp_path / "rehearsal"
    rehearsed = subprocess.run(
        [*no_network, str(target / "bin/python"), "-I", "-c", LOOPBACK_UP, ceremony,
         "rehearse", "--out", str(out)],
        cwd=elsewhere, env={**run_env, **PINS}, capture_output=True, text=True, check=False,
        timeout=900,
    )  # fmt: skip
    assert rehearsed.returncode == 0, rehearsed.stdout[-4000:] + rehearsed.stderr[-4000:]
    assert "Rehearsal complete and verified." in rehearsed.stdout
    assert "offline bundle (SHA-256 of its SHA256SUMS)" in rehearsed.stdout

    archive = out / "workspace" / "archive.tar"
    verified = subprocess.run(
        [ceremony, "verify", str(archive)],
        cwd=elsewhere, env=run_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"offline bundle {identity}" in verified.stdout and "FLAG" not in verified.stdout
    with tarfile.open(archive) as sealed:
        preflight = json.load(sealed.extractfile("preflight.json"))  # type: ignore[arg-type]
        statement = json.load(sealed.extractfile("evidence/statement.json"))  # type: ignore[arg-type]
    install = preflight["software"]["install"]
    assert install["kind"] == "bundle" and install["bundle_sha256"] == identity
    assert install["changed_files"] == []
    wheel_sha256 = hashlib.sha256(_project_wheel(bundle).read_bytes()).hexdigest()
    assert install["wheel_sha256"] == wheel_sha256
    assert preflight["software"]["distributions"]["byok-ceremony"]
    assert statement["predicate"]["software"][0]["install"]["bundle_sha256"] == identity


def _copy(bundle: Path, target: Path) -> Path:
    """A copy of the unpacked bundle made of hard links (cheap; never written through)."""
    shutil.copytree(bundle, target, copy_function=os.link)
    return target


@pytest.mark.parametrize("damage", ["one byte of a wheel", "a missing wheel", "an extra file"])
def test_install_refuses_a_damaged_bundle_and_creates_nothing(bundle, tmp_path, damage) -> None:
    copy = _copy(bundle, tmp_path / "bundle")
    victim = sorted((copy / "wheels").glob("*.whl"))[3]
    name = f"wheels/{victim.name}"
    if damage == "one byte of a wheel":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.unlink()  # a new file: the original bundle's link stays as it was
        victim.write_bytes(bytes(data))
        expected = f"changed: {name}"
    elif damage == "a missing wheel":
        victim.unlink()
        expected = f"missing: {name}"
    else:
        (copy / "wheels" / "evil-1.0-py3-none-any.whl").write_bytes(b"PK")
        expected = "extra file: wheels/evil-1.0-py3-none-any.whl"
    target = tmp_path / "installed"
    done = subprocess.run(
        ["sh", str(copy / "install.sh"), str(target)],
        env={**os.environ, "PYTHON": str(PYTHON)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"install.sh: refused: {expected}"), done.stderr
    assert not target.exists()
    assert name in (bundle / "SHA256SUMS").read_text() and (bundle / name).exists()


def test_install_refuses_an_existing_directory_and_a_python_the_wheels_do_not_fit(
    bundle, tmp_path
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    env = {**os.environ, "PYTHON": str(PYTHON)}
    done = subprocess.run(
        ["sh", str(bundle / "install.sh"), str(taken)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and f"install.sh: refused: {taken} exists" in done.stderr
    assert list(taken.iterdir()) == []

    # A bundle made for another Python (its SHA256SUMS made anew, as its builder would have).
    copy = _copy(bundle, tmp_path / "bundle")
    info = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").unlink()
    other = {**info, "python": "3.99", "python_min": "3.99.0"}
    (copy / "bundle.json").write_text(json.dumps(other))
    sums = subprocess.run(
        ["sh", "-c", "find . -type f ! -name SHA256SUMS | sed 's|^./||' | sort | xargs sha256sum"],
        cwd=copy, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (copy / "SHA256SUMS").unlink()
    (copy / "SHA256SUMS").write_text(sums)
    done = subprocess.run(
        ["sh", str(copy / "install.sh"), str(tmp_path / "new")],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "install.sh: refused: the wheels need Python 3.99.0 or a later 3.99.x" in done.stderr
    assert not (tmp_path / "new").exists()
