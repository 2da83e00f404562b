"""ceremony.softhsm: private SoftHSM2 directories and tokens created at any time in a process."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ceremony.errors import HsmError, UsageError
from ceremony.hsm import open_session
from ceremony.softhsm import SoftHsm, find_module
from tests.fixtures_hsm import new_token


def test_find_module_returns_an_existing_library():
    assert Path(find_module()).is_file()


def test_directory_is_private_with_its_own_config(softhsm):
    assert stat.S_IMODE(softhsm.root.stat().st_mode) == 0o700
    assert f"directories.tokendir = {softhsm.tokens_dir}" in softhsm.conf_path.read_text()
    assert softhsm.environ() == {"SOFTHSM2_CONF": str(softhsm.conf_path)}


def test_tokens_created_after_the_module_is_loaded_are_usable_at_once(softhsm):
    first = new_token(softhsm, "early")
    with open_session(first.module_path, first.label, pin=first.pin) as held:
        # created while a session is open: no re-initialisation, and the open session survives
        later = [new_token(softhsm, f"late{i}") for i in range(3)]
        for token in later:
            with open_session(token.module_path, token.label, pin=token.pin) as opened:
                assert opened.describe().token.label == token.label
        assert len(held.random_bytes(8)) == 8


def test_duplicate_label_and_bad_arguments_are_refused(softhsm, hsm_token):
    with pytest.raises(HsmError, match="exists already"):
        softhsm.create_token(hsm_token.label, "123456")
    with pytest.raises(UsageError, match="1 to 32 bytes"):
        softhsm.create_token("x" * 33, "123456")
    with pytest.raises(UsageError, match="4 to 255"):
        softhsm.create_token("short-pin", "1")


def test_second_directory_in_the_same_process_is_refused(softhsm, tmp_path):
    other = SoftHsm(tmp_path / "other")
    with pytest.raises(HsmError, match="another"):
        other.create_token("elsewhere", "123456")
    with pytest.raises(HsmError, match="already loaded"):
        other.activate()


CHILD = """
import json, sys
from pathlib import Path
from ceremony.softhsm import SoftHsm
from ceremony.hsm import describe_module, open_session
hsm = SoftHsm(Path(sys.argv[1]))
hsm.create_token("before-load", "123456")   # no module loaded yet: made by a child process
hsm.activate()
with open_session(hsm.module_path, "before-load", pin="123456") as s:
    hsm.create_token("after-load", "654321")  # module loaded: made in this process
with open_session(hsm.module_path, "after-load", pin="654321") as s:
    print(json.dumps(sorted(t.label for t in describe_module(hsm.module_path).tokens)))
"""


def test_fresh_process_creates_tokens_before_and_after_loading(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "fresh")],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["after-load", "before-load"]
    assert "123456" not in done.stderr
