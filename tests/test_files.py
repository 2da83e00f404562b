"""ceremony.files: outputs are written whole, with the asked mode, and never over another file."""

import stat
from pathlib import Path

import pytest

from ceremony.errors import RefusedError
from ceremony.files import refuse_existing, write_new


def test_write_new_writes_the_bytes_with_the_mode(tmp_path):
    out = write_new(tmp_path / "sub" / "key.pem", b"public", mode=0o600)
    assert out.read_bytes() == b"public"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["key.pem"], "no temporary file left behind"


def test_write_new_refuses_an_existing_file_and_keeps_it(tmp_path):
    target = tmp_path / "kek.pem"
    target.write_bytes(b"original")
    with pytest.raises(RefusedError, match="already exists"):
        write_new(target, b"replacement")
    assert target.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek.pem"]


def test_refuse_existing_names_the_first_existing_path(tmp_path):
    (tmp_path / "b").write_text("x")
    refuse_existing(tmp_path / "a")
    with pytest.raises(RefusedError, match=str(tmp_path / "b")):
        refuse_existing(tmp_path / "a", tmp_path / "b")


def test_write_new_in_follows_no_link_on_the_way(tmp_path):
    from ceremony.files import write_new_in

    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "keys").symlink_to(outside)
    with pytest.raises(RefusedError, match="'keys' on its way is a link"):
        write_new_in(root, "keys/a.byok", b"package")
    (root / "kek.pem").symlink_to(outside / "target")
    with pytest.raises(RefusedError, match="already exists"):
        write_new_in(root, "kek.pem", b"public")
    assert list(outside.iterdir()) == []
    assert write_new_in(root, "notebooks/00.ipynb", b"{}").read_bytes() == b"{}"
    assert sorted(p.name for p in (root / "notebooks").iterdir()) == ["00.ipynb"]


def test_read_regular_refuses_a_link_and_a_device(tmp_path):
    from ceremony.files import read_regular

    (tmp_path / "link").symlink_to("/dev/zero")
    with pytest.raises(RefusedError, match="is a link"):
        read_regular(tmp_path / "link")
    with pytest.raises(RefusedError, match="not a regular file"):
        read_regular(Path("/dev/zero"))
