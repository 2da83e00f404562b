"""ceremony lab: parameterized copies of the phase notebooks; JupyterLab kernels over IPC."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from ceremony.lab import lab_command, prepare_notebooks


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

    def fake_call(command, env):
        folder = Path(next(a for a in command if a.startswith("--notebook-dir=")).split("=", 1)[1])
        seen["folder"], seen["env"] = folder, env
        seen["names"] = sorted(p.name for p in folder.iterdir())
        seen["planted"] = any("planted" in p.read_text() for p in folder.iterdir())
        return 0

    monkeypatch.setattr("ceremony.cli.workbook_commands.subprocess.call", fake_call)
    for _ in range(2):
        assert main(["lab", str(plan), "--workspace", str(workspace), "--rehearsal"]) == 0
        assert workspace not in seen["folder"].parents
        assert len(seen["names"]) == 6 and not seen["planted"]
        assert seen["env"]["PYTHONSAFEPATH"] == "1"
        assert not seen["folder"].exists()
    assert planted.read_text() == '{"planted": true}'


def test_bare_lab_opens_read_only_copies(tmp_path, monkeypatch):
    from ceremony.cli import main

    modes: list[int] = []

    def fake_call(command, env):
        folder = Path(next(a for a in command if a.startswith("--notebook-dir=")).split("=", 1)[1])
        modes.extend(p.stat().st_mode & 0o777 for p in folder.iterdir())
        return 0

    monkeypatch.setattr("ceremony.cli.workbook_commands.subprocess.call", fake_call)
    assert main(["lab"]) == 0
    assert modes == [0o444] * 6


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
        deadline = time.monotonic() + 60
        while True:
            try:
                _request(f"{base}/status?token={token}")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "JupyterLab did not start in 60 s"
                time.sleep(0.5)
        kernel = _request(f"{base}/kernels?token={token}", method="POST")
        connection = json.loads((runtime / f"kernel-{kernel['id']}.json").read_text())
        assert connection["transport"] == "ipc"
        assert connection["ip"] == str(sockets / "kernel")
        deadline = time.monotonic() + 60
        while not any(p.is_socket() for p in sockets.iterdir()):
            assert time.monotonic() < deadline, "the kernel made no Unix socket in 60 s"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(sockets, ignore_errors=True)
