"""Every reader of outside input, fed anything: it reads a valid object or refuses with the
project's own error (a message, no traceback) and writes nothing. `make fuzz` runs 500 inputs per
reader; `make test` 50 (the profiles are in conftest.py)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from ceremony.byok import ByokPackage, parse_byok
from ceremony.errors import UsageError, VerificationError
from ceremony.evidence.archive import archive_bytes, parse_archive
from ceremony.evidence.records import KekRecord
from ceremony.people import Person, Quorum, parse_people_file
from ceremony.plan import Plan, parse_plan
from ceremony.publickey import load_public_key
from ceremony.transcript import Transcript, read_events
from tests.fixtures_localvault import byok_ciphertext, byok_file
from tests.fuzz_inputs import (
    hostile_bytes,
    hostile_json,
    reads_or_refuses,
    toml_reassigned,
)
from tests.test_localvault_http import API, http  # noqa: F401 (http is a fixture)
from tests.test_plan import GOOD, plan_dir  # noqa: F401 (plan_dir is a fixture)

KEK_KID = "https://contoso.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef"
_KEK = rsa.generate_private_key(65537, 2048)
KEK_PEM = _KEK.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
GOOD_BYOK = byok_file(KEK_KID, byok_ciphertext(_KEK.public_key(), os.urandom(32)))
GOOD_KEK_RECORD = {
    "schema_version": 1,
    "kid": KEK_KID,
    "kty": "RSA-HSM",
    "size": 2048,
    "key_ops": ["import"],
    "public_key_sha256": "ab" * 32,
    "source": "vault",
    "out_of_band_sha256": "ab" * 32,
}
SIGNER_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
GOOD_PEOPLE = {
    "people": [
        {"name": "ada", "role": "administrator", "public_key_pem": SIGNER_PEM, "signer": ""},
        {"name": "carol", "role": "custodian", "public_key_pem": SIGNER_PEM, "signer": "file:k"},
    ],
    "quorum": {"custodian": 1},
}
GOOD_ARCHIVE = archive_bytes(
    {"evidence/a.json": b'{"a": 1}\n', "evidence/b.txt": b"two\n", "manifest.json": b"{}\n"},
    1_700_000_000,
)


@pytest.fixture(scope="module")
def good_transcript(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("transcript") / "transcript.jsonl"
    transcript = Transcript(path)
    for phase in ("00-preflight", "01-kek", "02-hsm"):
        transcript.append(phase, "administrator", f"{phase} done", {"phase": phase})
    return path.read_bytes()


def test_the_good_samples_read(plan_dir, good_transcript) -> None:  # noqa: F811
    """The seeds the damage starts from are valid, so a refusal below is about the damage."""
    assert isinstance(parse_plan(GOOD, path=plan_dir / "plan.toml"), Plan)
    assert parse_byok(GOOD_BYOK, 2048).kid == KEK_KID
    assert load_public_key(KEK_PEM).public_numbers() == _KEK.public_key().public_numbers()
    assert KekRecord.from_json(json_bytes(GOOD_KEK_RECORD)).size == 2048
    people, quorum = parse_people_file(json_bytes(GOOD_PEOPLE), "people.json")
    assert [p.name for p in people] == ["ada", "carol"] and quorum.requirements == {"custodian": 1}
    assert sorted(parse_archive(GOOD_ARCHIVE, "archive.tar")) == [
        "evidence/a.json",
        "evidence/b.txt",
        "manifest.json",
    ]
    assert [e.seq for e in read_events(good_transcript)] == [1, 2, 3]


def json_bytes(document: object) -> bytes:
    return json.dumps(document).encode()


NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _as_text(data: bytes) -> str:
    """What a plan file's bytes look like once read: text (invalid UTF-8 is refused earlier)."""
    return data.decode("utf-8", errors="replace")


@given(st.one_of(toml_reassigned(GOOD), hostile_bytes(GOOD.encode()).map(_as_text)))
def test_plan_reader(plan_dir, text: str) -> None:  # noqa: F811
    def read(t: str) -> Plan:
        return parse_plan(t, path=plan_dir / "plan.toml", now=NOW)

    plan = reads_or_refuses(read, text, plan_dir)
    assert plan is None or isinstance(plan, Plan)


@given(hostile_json(json.loads(GOOD_BYOK)), st.sampled_from([None, 2048, 3072]))
def test_byok_reader(data: bytes, kek_bits: int | None) -> None:
    package = reads_or_refuses(lambda d: parse_byok(d, kek_bits), data)
    assert package is None or isinstance(package, ByokPackage)


@given(hostile_bytes(KEK_PEM))
def test_kek_pem_reader(data: bytes) -> None:
    key = reads_or_refuses(lambda d: load_public_key(d, "KEK"), data)
    assert key is None or isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)


@given(hostile_json(GOOD_KEK_RECORD))
def test_kek_record_reader(data: bytes) -> None:
    record = reads_or_refuses(lambda d: KekRecord.from_json(d, "kek.json"), data)
    assert record is None or isinstance(record, KekRecord)


@given(hostile_json(GOOD_PEOPLE))
def test_people_file_reader(data: bytes) -> None:
    read = reads_or_refuses(lambda d: parse_people_file(d, "people.json"), data)
    if read is not None:
        people, quorum = read
        assert all(isinstance(p, Person) for p in people) and isinstance(quorum, Quorum)


@given(hostile_bytes(GOOD_ARCHIVE))
def test_archive_reader(data: bytes) -> None:
    files = reads_or_refuses(lambda d: parse_archive(d, "archive.tar"), data)
    assert files is None or all(isinstance(v, bytes) for v in files.values())


@given(st.data())
def test_transcript_reader(good_transcript: bytes, data: st.DataObject) -> None:
    content = data.draw(hostile_bytes(good_transcript))
    events = reads_or_refuses(read_events, content)
    if events is not None:
        assert [e.seq for e in events] == list(range(1, len(events) + 1))


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_IMPORTED = rsa.generate_private_key(65537, 2048).private_numbers()
GOOD_IMPORT = {
    "key": {
        "kty": "RSA",
        "key_ops": ["sign", "verify"],
        **{
            name: _b64(value)
            for name, value in {
                "n": _IMPORTED.public_numbers.n,
                "e": _IMPORTED.public_numbers.e,
                "d": _IMPORTED.d,
                "p": _IMPORTED.p,
                "q": _IMPORTED.q,
                "dp": _IMPORTED.dmp1,
                "dq": _IMPORTED.dmq1,
                "qi": _IMPORTED.iqmp,
            }.items()
        },
    },
    "hsm": True,
    "attributes": {"enabled": True},
    "tags": {"purpose": "fuzz"},
}
GOOD_CREATE = {"kty": "EC-HSM", "crv": "P-256", "key_ops": ["sign", "verify"], "tags": {"a": "b"}}
GOOD_SIGN = {"alg": "ES256", "value": _b64(2**255 + 12345)}


@pytest.fixture(scope="module")
def vault_http(http):  # noqa: F811 (http is the fixture imported above)
    created = http.post("/keys/fuzz-ec/create", params=API, json=GOOD_CREATE)
    assert created.status_code == 200, created.text
    return http


def _versions(client, name: str) -> int:
    response = client.get(f"/keys/{name}/versions", params=API)
    return len(response.json()["value"]) if response.status_code == 200 else 0


@given(
    st.sampled_from(
        [
            ("PUT", "/keys/fuzz-rsa", GOOD_IMPORT),
            ("POST", "/keys/fuzz-ec/create", GOOD_CREATE),
            ("PATCH", "/keys/fuzz-ec/", {"attributes": {"enabled": True}, "tags": {}}),
            ("POST", "/keys/fuzz-ec//sign", GOOD_SIGN),
        ]
    ).flatmap(lambda route: st.tuples(st.just(route), hostile_json(route[2])))
)
def test_local_vault_request_bodies(vault_http, request_and_body) -> None:
    (method, path, _), body = request_and_body
    name = path.split("/")[2]
    before = _versions(vault_http, name)
    response = vault_http.request(method, path, params=API, content=body)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"]
        assert _versions(vault_http, name) == before, "a refused request changed the store"


# Inputs Hypothesis found that broke a reader, kept as plain tests.


@pytest.mark.parametrize("zero_blocks", [1, 2, 7])
def test_archive_padded_with_zero_blocks_is_refused_not_crashed(zero_blocks: int) -> None:
    """Extra zero blocks after the end marker made the canonical-form check raise StopIteration
    (the archive was a prefix-extension of its canonical form)."""
    with pytest.raises(VerificationError, match="not as the ceremony writes it"):
        parse_archive(GOOD_ARCHIVE + bytes(512 * zero_blocks), "archive.tar")


@pytest.mark.parametrize(
    "spec",
    [{"people": [["name"]], "quorum": {"custodian": 1}}, {"people": [], "quorum": [["a", 1]]}],
)
def test_people_file_with_lists_for_objects_is_refused(spec: dict) -> None:
    """A person given as a list reached Person.from_dict and raised AttributeError in the CLI."""
    with pytest.raises(UsageError, match="is not a people file"):
        parse_people_file(json_bytes(spec), "people.json")
