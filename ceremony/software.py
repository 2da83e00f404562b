"""software: which software runs this side of the ceremony — version, how it was installed, Python
and every installed distribution. Reads the installation only: never changes it, never goes online.

How it was installed is one of: "bundle" (the offline bundle's install.sh left a marker naming the
bundle's identity), "wheel" (pip recorded the wheel's SHA-256), "checkout" (a source tree, with its
git commit and whether it had uncommitted changes), "directory" (`pip install DIR`), "index" (by
name from a package index) or "unknown". Installed copies also say which of their files no longer
match what pip recorded at install time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ceremony import TOOL_NAME, __version__

# Written into the virtual environment by the offline bundle's install.sh (see offline/).
BUNDLE_MARKER = "byok-ceremony-bundle.json"
PACKAGE = Path(__file__).resolve().parent
_GIT_SECONDS = 20


@dataclass(frozen=True)
class Software:
    """The software one side ran, as its preflight recorded it."""

    version: str  # byok-ceremony's version
    install: dict[str, Any]  # {"kind": ..., and what identifies that kind of installation}
    python: str  # e.g. "CPython 3.11.7"
    distributions: dict[str, str]  # every installed distribution (normalized name) -> version

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Software:
        """From a preflight record's `software` (JSON from a workspace or archive, so checked):
        KeyError when incomplete, ValueError when a field has the wrong shape."""
        version, install, python, distributions = (
            data["version"], data["install"], data["python"], data["distributions"]
        )  # fmt: skip
        if not (
            isinstance(version, str)
            and isinstance(python, str)
            and isinstance(install, dict)
            and all(map(_flat_value, install.values()))
            and isinstance(distributions, dict)
            and all(isinstance(v, str) for v in distributions.values())
        ):
            raise ValueError("software is not as preflight writes it")
        return cls(version, dict(install), python, dict(distributions))

    @property
    def kind(self) -> str:
        return str(self.install.get("kind", "unknown"))

    @property
    def digest(self) -> str | None:
        """The SHA-256 that names what was installed (the bundle's, else the wheel's), if any."""
        value = self.install.get("bundle_sha256") or self.install.get("wheel_sha256")
        return str(value) if value else None

    def installed_as(self) -> str:
        """How it was installed, in one phrase, with the identity written out in full."""
        install, kind = self.install, self.kind
        if kind == "bundle":
            text = f"offline bundle {install.get('bundle_sha256')}"
        elif kind == "wheel":
            text = f"wheel {install.get('wheel')} sha256 {install.get('wheel_sha256')}"
        elif kind == "checkout":
            commit = install.get("commit") or f"unknown commit ({install.get('git', '?')})"
            dirty = {True: ", with uncommitted changes", False: ", clean"}.get(
                install.get("dirty"), ""
            )
            text = f"checkout {install.get('path')} at {commit}{dirty}"
        elif kind == "directory":
            text = f"directory {install.get('source')}"
        elif kind == "index":
            text = "package index"
        else:
            text = "unknown installation"
        changed = install.get("changed_files") or []
        if changed:
            text += f"; {len(changed)} installed file(s) changed since: {', '.join(changed[:3])}"
        return text

    def warnings(self, *, rehearsal: bool) -> list[str]:
        """What the evidence should list as an exception: installed files changed since they
        were installed; in a real ceremony, also a checkout with uncommitted changes."""
        found = []
        changed = self.install.get("changed_files") or []
        if changed:
            found.append(
                f"{TOOL_NAME}'s installed files changed since installation: {', '.join(changed)}"
            )
        if self.kind == "checkout" and self.install.get("dirty") and not rehearsal:
            found.append(f"{TOOL_NAME} ran from a checkout with uncommitted changes")
        return found

    def summary(self) -> str:
        """One line: version, installation, Python and how many distributions."""
        return (
            f"{TOOL_NAME} {self.version} from {self.installed_as()}; {self.python}; "
            f"{len(self.distributions)} distributions"
        )


def _flat_value(value: Any) -> bool:
    """What an `install` field may hold: text, a flag, nothing, or a list of text."""
    if isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    return value is None or isinstance(value, str | bool)


def running_software() -> Software:
    """The software of this process: this package, its installation, Python and distributions."""
    return Software(
        __version__,
        install_identity(),
        f"{platform.python_implementation()} {platform.python_version()}",
        installed_distributions(),
    )


def installed_distributions() -> dict[str, str]:
    """Every distribution this Python can import from, by normalized name (first on sys.path)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            found.setdefault(normalize(name), dist.version)
    return dict(sorted(found.items()))


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def install_identity() -> dict[str, Any]:
    """How this package was installed, and what names that installation."""
    if (PACKAGE.parent / "pyproject.toml").is_file():  # a source tree, editable or not
        return {"kind": "checkout", **checkout_state(PACKAGE.parent)}
    dist = _own_distribution()
    if dist is None:
        return {"kind": "unknown"}
    changed = changed_files(dist)
    direct = _direct_url(dist)
    if direct is None:
        bundle = _bundle_marker(dist)
        if bundle is not None:
            return {"kind": "bundle", **bundle, "changed_files": changed}
        return {"kind": "index", "changed_files": changed}
    archive = direct.get("archive_info")
    if isinstance(archive, dict):
        hashes = archive.get("hashes") or {}
        digest = hashes.get("sha256") or str(archive.get("hash", "")).removeprefix("sha256=")
        wheel = str(direct.get("url", "")).rsplit("/", 1)[-1]
        return {"kind": "wheel", "wheel": wheel, "wheel_sha256": digest or None,
                "changed_files": changed}  # fmt: skip
    return {"kind": "directory", "source": direct.get("url"), "changed_files": changed}


def changed_files(dist: metadata.Distribution) -> list[str]:
    """Installed files whose content no longer has the SHA-256 pip recorded (RECORD)."""
    changed = []
    for entry in dist.files or []:
        if entry.hash is None:
            continue
        try:
            data = Path(str(entry.locate())).read_bytes()
        except OSError:
            changed.append(str(entry))
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if entry.hash.mode != "sha256" or entry.hash.value != digest:
            changed.append(str(entry))
    return sorted(changed)


def record_sha256(dist: metadata.Distribution) -> str | None:
    """SHA-256 of the distribution's RECORD: what pip installed, file by file, with digests."""
    text = dist.read_text("RECORD")
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None


def _own_distribution() -> metadata.Distribution | None:
    """The installed distribution whose files are this very package, or None."""
    try:
        dist = metadata.distribution(TOOL_NAME)
    except metadata.PackageNotFoundError:
        return None
    init = Path(str(dist.locate_file("ceremony/__init__.py"))).resolve()
    return dist if init == PACKAGE / "__init__.py" else None


def _direct_url(dist: metadata.Distribution) -> dict[str, Any] | None:
    """PEP 610's direct_url.json: present when pip installed from a file, directory or URL."""
    text = dist.read_text("direct_url.json")
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _bundle_marker(dist: metadata.Distribution) -> dict[str, Any] | None:
    """The bundle's marker in this environment, when it describes this very installation."""
    path = Path(sys.prefix) / BUNDLE_MARKER
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("record_sha256") != record_sha256(dist):
        return None  # left from another installation: this package is not what it describes
    keys = ("bundle_sha256", "wheel", "wheel_sha256", "source_commit", "source_dirty")
    return {key: marker.get(key) for key in keys}


def write_bundle_marker(bundle: dict[str, Any], identity: str) -> Path:
    """Called by the offline bundle's install.sh once pip is done: record in this environment
    which bundle (its bundle.json, and its identity) installed this very package."""
    dist = _own_distribution()
    if dist is None:
        raise RuntimeError(f"{TOOL_NAME} is not installed in {sys.prefix}.")
    marker = {
        "bundle_sha256": identity,
        "version": bundle["version"],
        "wheel": bundle["wheel"],
        "wheel_sha256": bundle["wheel_sha256"],
        "source_commit": bundle.get("source_commit"),
        "source_dirty": bundle.get("source_dirty"),
        "record_sha256": record_sha256(dist),
    }
    path = Path(sys.prefix) / BUNDLE_MARKER
    with path.open("x") as stream:
        stream.write(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return path


def checkout_state(root: Path) -> dict[str, Any]:
    """A source tree: its path, git commit and whether it differs from that commit (None, with
    git's answer, when git cannot tell)."""
    identity: dict[str, Any] = {"path": str(root), "commit": None}
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain") if commit.ok else commit
    if commit.ok and status.ok:
        identity.update(commit=commit.out.strip(), dirty=bool(status.out.strip()))
    else:
        identity.update(dirty=None, git=(status if commit.ok else commit).out.strip()[:200])
    return identity


@dataclass(frozen=True)
class _GitAnswer:
    ok: bool
    out: str


def _git(root: Path, *args: str) -> _GitAnswer:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_SECONDS,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return _GitAnswer(False, f"git could not run: {exc}")
    return _GitAnswer(done.returncode == 0, done.stdout if done.returncode == 0 else done.stderr)


def differences(first: Software, second: Software) -> list[str]:
    """What differs between two sides' software, one short phrase each; empty when the same."""
    found = []
    if first.version != second.version:
        found.append(f"{TOOL_NAME} {first.version} and {second.version}")
    if _identity_key(first) != _identity_key(second):
        found.append(f"installed as {first.installed_as()} and as {second.installed_as()}")
    if first.python != second.python:
        found.append(f"{first.python} and {second.python}")
    names = sorted(set(first.distributions) | set(second.distributions))
    changed = [
        f"{n} {first.distributions.get(n, 'absent')} and {second.distributions.get(n, 'absent')}"
        for n in names
        if first.distributions.get(n) != second.distributions.get(n)
    ]
    if changed:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        found.append(f"distributions differ: {'; '.join(changed[:5])}{more}")
    return found


def _identity_key(software: Software) -> tuple[Any, ...]:
    install = software.install
    return (
        software.kind,
        install.get("bundle_sha256"),
        install.get("wheel_sha256"),
        install.get("commit"),
        install.get("dirty"),
        tuple(install.get("changed_files") or ()),
    )
