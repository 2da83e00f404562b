"""ceremony lab: parameterized copies of the phase notebooks; JupyterLab kernels over IPC."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from ceremony.lab import lab_command, prepare_notebooks
from ceremony.resources import notebooks_dir
from tests.listeners import listeners, process_tree


def _injected_source(notebook: Path) -> str:
    cells = nbformat.read(notebook, as_version=4).cells
    injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, f"{notebook.name} has no injected parameters cell"
    return injected[0].source


def test_prepare_writes_six_parameterized_unexecuted_notebooks(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("# a plan\n")
    folder = prepare_notebooks(plan, tmp_path / "ws", "rehearsal", tmp_path / "nb")
    names = sorted(p.name for p in folder.glob("*.ipynb"))
    assert names == [
        "00_preflight.ipynb",
        "01_kek.ipynb",
        "02_generate.ipynb",
        "03_wrap.ipynb",
        "04_upload.ipynb",
        "05_evidence.ipynb",
    ]
    for notebook in folder.glob("*.ipynb"):
        source = _injected_source(notebook)
        assert f'plan = "{plan.resolve()}"' in source
        assert f'workspace = "{(tmp_path / "ws").resolve()}"' in source
        assert 'mode = "rehearsal"' in source
        assert "pin" not in source.lower()
        cells = nbformat.read(notebook, as_version=4).cells
        assert all(not c.get("outputs") for c in cells if c.cell_type == "code")


def test_lab_opens_only_fresh_copies_never_what_the_workspace_holds(tmp_path, monkeypatch):
    """A notebook planted on the medium (the old WORKSPACE/lab) is never opened: each lab gets
    fresh copies in a private folder, removed when it ends, and kernels that ignore their cwd."""
    from ceremony.cli import main

    plan = tmp_path / "plan.toml"
    plan.write_text("# a plan\n")
    workspace = tmp_path / "ws"
    (workspace / "lab").mkdir(parents=True)
    planted = workspace / "lab" / "00_preflight.ipynb"
    planted.write_text('{"planted": true}')
    seen: dict = {}

    class FakeLab:  # stands in for JupyterLab: looks at what it was given, then exits
        pid = os.getpid()

        def __init__(self, command, env, **_):
            folder = next(a for a in command if a.startswith("--notebook-dir="))
            folder = Path(folder.split("=", 1)[1])
            seen["folder"], seen["env"] = folder, env
            seen["names"] = sorted(p.name for p in folder.iterdir())
            seen["planted"] = any("planted" in p.read_text() for p in folder.iterdir())

        def wait(self):
            return 0

    monkeypatch.setattr("ceremony.lab_session.subprocess.Popen", FakeLab)
    monkeypatch.setattr("ceremony.lab_session._stop_tree", lambda server: None)
    for _ in range(2):
        assert main(["lab", str(plan), "--workspace", str(workspace), "--rehearsal"]) == 0
        assert workspace not in seen["folder"].parents
        assert len(seen["names"]) == 6 and not seen["planted"]
        assert seen["env"]["PYTHONSAFEPATH"] == "1"
        assert not seen["folder"].exists()
    assert planted.read_text() == '{"planted": true}'


def test_prepare_refuses_a_missing_plan(tmp_path: Path) -> None:
    from ceremony.errors import UsageError

    with pytest.raises(UsageError, match="does not exist"):
        prepare_notebooks(tmp_path / "nope.toml", tmp_path / "ws", "ceremony", tmp_path / "nb")
    assert not (tmp_path / "ws").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        return json.loads(response.read())


def _wait_until_serving(status_url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    """Until JupyterLab answers; fails with its last output if it ends first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            _request(status_url)
            return
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, f"JupyterLab did not start in {seconds} s"
            time.sleep(0.5)


def _wait_for_socket(folder: Path, seconds: float = 60, count: int = 1) -> None:
    """Until the kernel has made `count` Unix sockets in FOLDER."""
    deadline = time.monotonic() + seconds
    while sum(p.is_socket() for p in folder.iterdir()) < count:
        assert time.monotonic() < deadline, (
            f"the kernel made no {count} Unix sockets in {seconds} s"
        )
        time.sleep(0.5)


def test_jupyterlab_starts_kernels_over_ipc(tmp_path: Path) -> None:
    port, token = _free_port(), "lab-test-token"
    runtime = tmp_path / "runtime"
    sockets = Path(tempfile.mkdtemp(prefix="lab-test-"))
    command = [
        *lab_command(tmp_path, sockets),
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api"
    try:
        _wait_until_serving(f"{base}/status?token={token}", server)
        kernel = _request(f"{base}/kernels?token={token}", method="POST")
        connection = json.loads((runtime / f"kernel-{kernel['id']}.json").read_text())
        assert connection["transport"] == "ipc"
        assert connection["ip"] == str(sockets / "kernel")
        _wait_for_socket(sockets)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(sockets, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Running, and not merely a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_bare_lab_reads_a_copy_asks_no_internet_and_leaves_nothing(tmp_path, signum):
    """`ceremony lab`, stopped by kill or a closed terminal: JupyterLab, its kernel and the
    private folder are gone; it opened a read-only copy, with news and update checks off."""
    port, token = _free_port(), "lab-signal-token"
    config, runtime = tmp_path / "config", tmp_path / "runtime"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"port": port, "ip": "127.0.0.1", "open_browser": False},
        "IdentityProvider": {"token": token},
    }))  # fmt: skip
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(runtime)}
    checkout = {p.name: p.read_bytes() for p in notebooks_dir().glob("*.ipynb")}
    lab = subprocess.Popen(
        [sys.executable, "-m", "ceremony", "lab"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    tree: set[int] = set()
    try:
        _wait_until_serving(f"{base}/api/status?token={token}", lab)
        tree |= process_tree(lab.pid)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{base}/lab?token={token}", timeout=10) as response:
            page = response.read().decode()
        found = re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.DOTALL)
        page_config = json.loads(found.group(1))
        assert page_config["news"] == {"disabled": True}  # so it never asks about news
        assert _request(f"{base}/lab/api/update?token={token}") == {"notification": None}
        listing = _request(f"{base}/api/contents?token={token}")
        assert sorted(c["name"] for c in listing["content"]) == sorted(checkout)
        kernel = _request(f"{base}/api/kernels?token={token}", method="POST")
        connection = json.loads((runtime / f"kernel-{kernel['id']}.json").read_text())
        private = Path(connection["ip"]).parent
        assert private.name.startswith("ceremony-lab-")
        copy = private / "notebooks"
        assert sorted(p.name for p in copy.iterdir()) == sorted(checkout)
        assert all(p.stat().st_mode & 0o777 == 0o400 for p in copy.iterdir())  # read-only
        # All five of its sockets: the kernel is past the point where it would open the pipe.
        _wait_for_socket(private, count=5)
        tree |= process_tree(lab.pid)
        assert len(tree) >= 3  # ceremony lab, JupyterLab, the kernel
        # The one TCP listener is JupyterLab's own page; its kernel opened none.
        assert {port for _, port in listeners(tree)} == {port}
        os.kill(lab.pid, signum)
        assert lab.wait(timeout=60) == 128 + signum
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [pid for pid in tree if _alive(pid)] == []
        assert not private.exists()
        with pytest.raises(OSError):
            _request(f"{base}/api/status?token={token}")
        assert {p.name: p.read_bytes() for p in notebooks_dir().glob("*.ipynb")} == checkout
    finally:  # whatever failed, nothing of this test keeps running
        for pid in tree | process_tree(lab.pid):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        lab.wait()


def test_a_practice_lab_makes_its_own_plan_and_workspace(tmp_path: Path, capsys) -> None:
    from ceremony.cli import main

    plan = tmp_path / "plan.toml"
    plan.write_text("# a plan\n")
    assert main(["lab", str(plan), "--practice", str(tmp_path / "practice")]) == 2
    error = capsys.readouterr().err
    assert "A practice ceremony makes its own plan and workspace." in error
    assert "Traceback" not in error and not (tmp_path / "practice").exists()
