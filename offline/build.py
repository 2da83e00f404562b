"""offline.build: make the offline bundle — the project's wheel, a wheel for each dependency, a
lock file with hashes, SHA256SUMS and install.sh, in one deterministic tar. Needs the network.

The bundle's identity is the SHA-256 of its SHA256SUMS: written down here, compared on the offline
machine before installing, and recorded by each side's preflight. The project wheel is built from
a clean copy of the source with SOURCE_DATE_EPOCH, so two builds of the same source are identical.
Never writes outside its temporary directory and the output file.

    python -m offline.build [--out dist] [--debs]        # what `make bundle [DEBS=1]` runs
    python -m offline.build --wheel-only --out DIR       # only the project wheel
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ceremony.software import checkout_state, normalize  # stdlib only, like this module

ROOT = Path(__file__).resolve().parent.parent
NAME = "byok-ceremony"
INSTALL_SCRIPT = Path(__file__).resolve().parent / "install.sh"
SUMS, LOCK, INFO = "SHA256SUMS", "requirements.lock", "bundle.json"
WHEELS, DEBS = "wheels", "debs"
# Debian packages for the offline machine (make bundle DEBS=1), with what they depend on.
DEB_PACKAGES = ("softhsm2", "opensc", "python3-venv")
# Never carried: present on every Debian system, and never to be replaced from a bundle.
_SKIPPED_PRIORITIES = ("required",)
# Left out of the staged source: build products and local state.
_NOT_SOURCE = {".git", ".venv", "build", "dist", ".pytest_cache", ".ruff_cache", "rehearsal"}
_ZIP_EPOCH = 315532800  # 1980-01-01, the earliest time a zip (wheel) can hold
T = TypeVar("T")


class BuildError(Exception):
    """The bundle could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class Bundle:
    """A finished bundle: its file and its identity (the SHA-256 of its SHA256SUMS)."""

    path: Path
    identity: str
    wheel: str
    wheel_sha256: str
    distributions: int


def version() -> str:
    """The project's version, from ceremony/__init__.py (pyproject.toml reads it from there)."""
    text = (ROOT / "ceremony" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not found:
        raise BuildError("ceremony/__init__.py has no __version__ line.")
    return found.group(1)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(*args: str) -> str | None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def source_state() -> dict[str, object]:
    """The git commit the source is at, and whether it has uncommitted changes (None: no git)."""
    state = checkout_state(ROOT)
    return {"source_commit": state["commit"], "source_dirty": state["dirty"]}


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH from the environment, else the commit's time, else 1980-01-01."""
    given = os.environ.get("SOURCE_DATE_EPOCH")
    if given:
        if not given.isdigit():
            raise BuildError(f"SOURCE_DATE_EPOCH={given!r} is not a number of seconds.")
        return max(int(given), _ZIP_EPOCH)
    committed = _git("log", "-1", "--format=%ct")
    return max(int(committed.strip()), _ZIP_EPOCH) if committed else _ZIP_EPOCH


def source_files() -> list[str]:
    """The files that make the source: git's tracked and untracked-not-ignored files, or else
    every file outside build products and local state."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is not None:
        names = [n for n in listed.split("\0") if n]
    else:
        names = [
            p.relative_to(ROOT).as_posix()
            for p in ROOT.rglob("*")
            if p.is_file()
            and not set(p.relative_to(ROOT).parts) & _NOT_SOURCE
            and "__pycache__" not in p.parts
            and not p.name.endswith(".egg-info")
        ]
    return sorted(n for n in names if (ROOT / n).is_file() and "egg-info" not in n)


def stage_source(target: Path) -> Path:
    """A clean copy of the source: no build/ or egg-info left from an earlier build can leak in."""
    for name in source_files():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, destination)
    return target


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0:
        raise BuildError(f"pip {args[0]} failed (exit {done.returncode}): {' '.join(command)}")


def build_project_wheel(out: Path, epoch: int | None = None) -> Path:
    """The project's wheel, built from a clean copy of the source with SOURCE_DATE_EPOCH."""
    epoch = source_date_epoch() if epoch is None else epoch
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="byok-wheel-") as tmp:
        source = stage_source(Path(tmp) / "source")
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0"}
        _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", tmp, str(source), env=env)
        built = sorted(Path(tmp).glob("byok_ceremony-*.whl"))
        if len(built) != 1:
            raise BuildError(f"pip built {len(built)} project wheels instead of one.")
        target = out / built[0].name
        shutil.copyfile(built[0], target)
    return target


def collect_wheels(project_wheel: Path, wheels: Path) -> list[Path]:
    """The project wheel and a wheel of every dependency for this platform and Python: downloaded
    where the index has one, built here where it has only a source distribution."""
    wheels.mkdir(parents=True, exist_ok=True)
    _pip("wheel", "--quiet", "--prefer-binary", "--wheel-dir", str(wheels), str(project_wheel))
    found = sorted(wheels.glob("*.whl"))
    if sha256_file(wheels / project_wheel.name) != sha256_file(project_wheel):
        raise BuildError(f"pip replaced {project_wheel.name} while collecting the dependencies.")
    return found


def wheel_name_version(wheel: Path) -> tuple[str, str]:
    """A wheel file's distribution name (PEP 503 form) and version, from its file name."""
    name, version_text = wheel.name.split("-")[:2]
    return normalize(name), version_text


def python_minimum(wheels: list[Path]) -> str:
    """The earliest release of this Python's X.Y that every wheel's Requires-Python accepts:
    the offline machine's Python must be at least that (Debian 12 has 3.11.2, say)."""
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.specifiers import SpecifierSet
    specifiers = [SpecifierSet(s) for s in filter(None, map(_requires_python, wheels))]
    major, minor, current = sys.version_info[:3]
    for patch in range(current + 1):
        candidate = f"{major}.{minor}.{patch}"
        if all(candidate in specifier for specifier in specifiers):
            return candidate
    return f"{major}.{minor}.{current}"


def _requires_python(wheel: Path) -> str | None:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        for line in archive.read(name).decode("utf-8", "replace").splitlines():
            if not line:
                break  # the headers end at the first empty line
            if line.lower().startswith("requires-python:"):
                return line.split(":", 1)[1].strip()
    return None


def lock_file(wheels: list[Path]) -> bytes:
    """requirements.lock: every distribution the bundle installs, pinned, with its wheel's hash."""
    lines = [
        f"# {NAME} offline bundle: what install.sh installs, exactly, with each wheel's SHA-256.",
        "# pip install --no-index --find-links wheels --require-hashes -r requirements.lock",
    ]
    for wheel in sorted(wheels, key=lambda w: wheel_name_version(w)):
        name, pinned = wheel_name_version(wheel)
        lines.append(f"{name}=={pinned} \\\n    --hash=sha256:{sha256_file(wheel)}")
    return ("\n".join(lines) + "\n").encode()


def download_debs(target: Path) -> list[str]:
    """The Debian packages of DEB_PACKAGES and what they depend on (first alternatives only),
    except those every Debian system has (Essential, or Priority required)."""
    if shutil.which("apt-get") is None or shutil.which("apt-cache") is None:
        raise BuildError("DEBS=1 needs apt-get and apt-cache: make the bundle on Debian or Ubuntu.")
    wanted, frontier = set(DEB_PACKAGES), list(DEB_PACKAGES)
    while frontier:
        found = {d for deps in _apt(["depends", *_APT_DEPENDS, *frontier], _first_alternatives)
                 .values() for d in deps}  # fmt: skip
        frontier = sorted(found - wanted)
        wanted |= found
    fields = _apt(["show", "--no-all-versions", *sorted(wanted)], _stanzas)
    kept = sorted(
        name for name in wanted
        if fields.get(name, {}).get("Essential") != "yes"
        and fields.get(name, {}).get("Priority") not in _SKIPPED_PRIORITIES
    )  # fmt: skip
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "download", *kept], cwd=target, check=False)
    if done.returncode != 0:
        raise BuildError("apt-get download failed; run apt-get update and try again.")
    return sorted(p.name for p in target.glob("*.deb"))


_APT_DEPENDS = ("--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
                "--no-replaces", "--no-enhances")  # fmt: skip


def _apt(arguments: list[str], parse: Callable[[str], T]) -> T:
    """Run apt-cache and parse what it printed."""
    done = subprocess.run(["apt-cache", *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        problem = done.stderr.strip()
        raise BuildError(f"apt-cache {arguments[0]} failed: {problem} (apt-get update first?)")
    return parse(done.stdout)


def _first_alternatives(text: str) -> dict[str, list[str]]:
    """`apt-cache depends` output -> package: the packages it needs, taking the first of each
    "a | b" group and the first provider of a virtual package."""
    needs: dict[str, list[str]] = {}
    package, in_group, want_provider = "", False, False
    for line in text.splitlines():
        if not line.startswith(" "):
            package, in_group, want_provider = line.strip(), False, False
            needs[package] = []
            continue
        found = re.match(r"^ ([ |])(?:Pre)?Depends: (\S+)$", line)
        if found is None:  # a provider of the virtual package above
            if want_provider:
                needs[package].append(line.strip().split(":")[0])
                want_provider = False
            continue
        name = found.group(2).split(":")[0]
        if not in_group:
            if name.startswith("<"):
                want_provider = True
            else:
                needs[package].append(name)
        in_group = found.group(1) == "|"
    return needs


def _stanzas(text: str) -> dict[str, dict[str, str]]:
    """`apt-cache show` output -> package: its fields."""
    found = {}
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields:
            found[fields["Package"]] = fields
    return found


def sums(stage: Path) -> bytes:
    """SHA256SUMS (`sha256sum -c` format) of every file in the bundle but itself, sorted."""
    rows = [
        f"{sha256_file(p)}  {p.relative_to(stage).as_posix()}\n"
        for p in sorted(stage.rglob("*"))
        if p.is_file() and p.name != SUMS
    ]
    return "".join(rows).encode()


def write_tar(stage: Path, target: Path, epoch: int) -> None:
    """A deterministic tar: sorted members under one folder, fixed times, owner and modes."""
    partial = target.with_name(target.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        for path in [stage, *sorted(stage.rglob("*"))]:
            info = archive.gettarinfo(str(path), (stage.name / path.relative_to(stage)).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
            executable = path.is_dir() or path.name == INSTALL_SCRIPT.name
            info.mode = 0o755 if executable else 0o644
            if path.is_file():
                with path.open("rb") as stream:
                    archive.addfile(info, stream)
            else:
                archive.addfile(info)
    partial.replace(target)


def build_bundle(out: Path, *, debs: bool = False) -> Bundle:
    """Make out/byok-ceremony-<version>-offline.tar (replacing an earlier one of that name)."""
    release = version()
    epoch = source_date_epoch()
    if not INSTALL_SCRIPT.is_file():
        raise BuildError(f"{INSTALL_SCRIPT} is missing.")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="byok-bundle-") as tmp:
        stage = Path(tmp) / f"{NAME}-{release}-offline"
        project = build_project_wheel(Path(tmp) / "project", epoch)
        wheels = collect_wheels(project, stage / WHEELS)
        (stage / LOCK).write_bytes(lock_file(wheels))
        deb_files = download_debs(stage / DEBS) if debs else []
        info = {
            "name": NAME,
            "version": release,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "python_min": python_minimum(wheels),
            "implementation": platform.python_implementation(),
            "platform": sysconfig.get_platform(),
            "wheel": project.name,
            "wheel_sha256": sha256_file(project),
            "wheels": len(wheels),
            "debs": deb_files,
            "source_date_epoch": epoch,
            **source_state(),
        }
        (stage / INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        shutil.copyfile(INSTALL_SCRIPT, stage / INSTALL_SCRIPT.name)
        (stage / INSTALL_SCRIPT.name).chmod(0o755)
        manifest = sums(stage)
        (stage / SUMS).write_bytes(manifest)
        target = out / f"{stage.name}.tar"
        write_tar(stage, target, epoch)
    return Bundle(
        target, hashlib.sha256(manifest).hexdigest(), project.name, info["wheel_sha256"],
        len(wheels),
    )  # fmt: skip


def _words(identity: str) -> str:
    """The identity as PGP words, when the workbook is importable here (it is in make's venv)."""
    try:
        from ceremony.fingerprint import Fingerprint
    except ImportError:
        return ""
    return Fingerprint(bytes.fromhex(identity)).words


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.build", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (dist)")
    parser.add_argument(
        "--debs", action="store_true", help="add the Debian packages " + ", ".join(DEB_PACKAGES)
    )
    parser.add_argument("--wheel-only", action="store_true", help="build only the project wheel")
    args = parser.parse_args(argv)
    try:
        if args.wheel_only:
            wheel = build_project_wheel(args.out)
            print(f"{wheel}\nsha256 {sha256_file(wheel)}")
            return 0
        bundle = build_bundle(args.out, debs=args.debs)
    except BuildError as exc:
        print(f"offline.build: {exc}", file=sys.stderr)
        return 1
    print(f"\nOffline bundle: {bundle.path}")
    print(f"  {bundle.wheel} (sha256 {bundle.wheel_sha256}) and {bundle.distributions - 1} "
          "dependency wheels")  # fmt: skip
    print("Bundle identity (SHA-256 of its SHA256SUMS). Write it down; compare it on the offline")
    print("machine before installing (sha256sum SHA256SUMS), and in each side's preflight:")
    print(f"  {bundle.identity}")
    words = _words(bundle.identity)
    if words:
        print(f"  {words}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
