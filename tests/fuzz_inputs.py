"""Hypothesis strategies for hostile input: random bytes, damaged copies of a good file, and good
JSON/TOML documents with one field swapped for anything at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import event
from hypothesis import strategies as st

from ceremony.errors import CeremonyError

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

TOML_VALUES = st.one_of(
    st.integers().map(str),
    st.text(max_size=30).map(json.dumps),
    st.sampled_from(["true", "false", "[]", "{}", "1979-05-27T07:32:00Z", "nan", "-0", "[1, 'a']"]),
    st.lists(st.text(max_size=10), max_size=3).map(json.dumps),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)


@st.composite
def damaged(draw: st.DrawFn, good: bytes) -> bytes:
    """`good` with a few bytes changed, ranges cut or inserted, or its tail truncated."""
    data = bytearray(good)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(("change", "cut", "insert", "truncate"))):
            case "change" if at < len(data):
                data[at] = draw(st.integers(0, 255))
            case "cut":
                del data[at : at + draw(st.integers(1, 64))]
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
            case "truncate":
                del data[at:]
    return bytes(data)


def _paths(value: Any, here: tuple = ()) -> list[tuple]:
    """Every place in a JSON document a value sits, as a tuple of keys and indices."""
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


@st.composite
def reshaped(draw: st.DrawFn, good: Any) -> Any:
    """A copy of the JSON document `good` with one value replaced, removed or a field added."""
    document = json.loads(json.dumps(good))
    where = draw(st.sampled_from(_paths(document)))
    if not where:
        return draw(JSON_VALUES)
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(("replace", "remove", "add")))
    if action == "remove":
        del parent[where[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(JSON_VALUES)
    else:
        parent[where[-1]] = draw(JSON_VALUES)
    return document


def hostile_bytes(good: bytes) -> st.SearchStrategy[bytes]:
    """Anything a reader of `good`-like files may be handed."""
    return st.one_of(st.binary(max_size=1024), damaged(good))


def hostile_json(good: Any) -> st.SearchStrategy[bytes]:
    """hostile_bytes of the JSON document plus structurally wrong JSON documents."""
    encoded = json.dumps(good).encode()
    return st.one_of(hostile_bytes(encoded), reshaped(good).map(lambda d: json.dumps(d).encode()))


@st.composite
def toml_reassigned(draw: st.DrawFn, good: str) -> str:
    """The TOML text `good` with the value of one `key = value` line replaced by anything."""
    lines = good.splitlines()
    assignments = [i for i, line in enumerate(lines) if " = " in line]
    at = draw(st.sampled_from(assignments))
    key = lines[at].split(" = ", 1)[0]
    lines[at] = f"{key} = {draw(TOML_VALUES)}"
    return "\n".join(lines) + "\n"


def listing(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its content, to show a refusal wrote nothing."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def reads_or_refuses(read: Any, data: Any, root: Path | None = None) -> Any:
    """Call `read(data)`: it returns a value or raises a CeremonyError with a one-line message,
    and leaves `root` as it was. Any other exception fails the test with its traceback."""
    before = listing(root) if root else None
    try:
        value = read(data)
        event("read")
        return value
    except CeremonyError as refusal:
        event(f"refused: {type(refusal).__name__}")
        assert refusal.message.strip(), "a refusal must say what is wrong"
        assert "Traceback" not in str(refusal)
        return None
    finally:
        if root is not None:
            assert listing(root) == before, "a reader wrote or changed a file"
