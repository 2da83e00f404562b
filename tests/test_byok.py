"""ceremony.byok: the .byok JSON and the KEK kid, checked field by field."""

from __future__ import annotations

import base64
import json

import pytest

from ceremony import TOOL_NAME, __version__
from ceremony.byok import ByokPackage, generator_text, parse_byok, parse_kid
from ceremony.errors import ByokFormatError

KID = "https://contoso-kv.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef"
CIPHERTEXT = bytes(range(256)) + bytes(40)  # RSA-2048 block + a 40-byte RFC 5649 wrap


def document(**changes) -> dict:
    doc = json.loads(ByokPackage(KID, CIPHERTEXT, "gen").to_bytes())
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return doc


def encode(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def test_to_bytes_is_exactly_the_azure_shape():
    doc = json.loads(ByokPackage(KID, CIPHERTEXT, "gen").to_bytes())
    assert list(doc) == ["schema_version", "header", "ciphertext", "generator"]
    assert doc["schema_version"] == "1.0.0"
    assert doc["header"] == {"kid": KID, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}
    assert "=" not in doc["ciphertext"] and "+" not in doc["ciphertext"]
    padded = doc["ciphertext"] + "=" * (-len(doc["ciphertext"]) % 4)
    assert base64.urlsafe_b64decode(padded) == CIPHERTEXT  # decoded independently


def test_round_trip():
    package = ByokPackage(KID, CIPHERTEXT, "gen")
    assert parse_byok(package.to_bytes(), kek_bits=2048) == package


def test_generator_names_tool_version_and_hsm():
    text = generator_text("SoftHSM project", "SoftHSM v2", "2.6")
    assert text == f"{TOOL_NAME} {__version__}; SoftHSM project SoftHSM v2 firmware 2.6"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"schema_version": "2.0.0"}, "schema_version"),
        ({"schema_version": ...}, "schema_version"),
        ({"header__alg": "RSA-OAEP"}, "header.alg"),
        ({"header__enc": "CKM_AES_KEY_WRAP_PAD"}, "header.enc"),
        ({"header__kid": ...}, "kid"),
        ({"header__kid": 7}, "header.kid"),
        ({"header__extra": 1}, "extra"),
        ({"header": "x"}, "header"),
        ({"ciphertext": "abc+/"}, "ciphertext"),
        ({"ciphertext": "AAAA=="}, "ciphertext"),
        ({"ciphertext": ""}, "ciphertext"),
        ({"ciphertext": base64.urlsafe_b64encode(bytes(100)).decode()}, "ciphertext"),
        ({"generator": ...}, "generator"),
        ({"generator": 3}, "generator"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_malformed_fields_are_named(changes, field):
    with pytest.raises(ByokFormatError, match=f"field '{field}'"):
        parse_byok(encode(document(**changes)))


def test_not_json_is_refused():
    with pytest.raises(ByokFormatError, match="not UTF-8 JSON"):
        parse_byok(b"\xff{")
    with pytest.raises(ByokFormatError, match="must be a JSON object"):
        parse_byok(b"[]")


def test_rsa_block_must_match_the_kek_size():
    data = ByokPackage(KID, CIPHERTEXT, "gen").to_bytes()
    parse_byok(data, kek_bits=2048)
    with pytest.raises(ByokFormatError, match="384-byte RSA block"):
        parse_byok(data, kek_bits=3072)
    with pytest.raises(ByokFormatError, match="1024-bit KEK"):
        parse_byok(data, kek_bits=1024)


def test_unversioned_kid_is_refused_inside_a_package():
    doc = document(header__kid="https://contoso-kv.vault.azure.net/keys/kek")
    with pytest.raises(ByokFormatError, match="not a /keys/<name>/<version> URL"):
        parse_byok(encode(doc))


@pytest.mark.parametrize(
    ("kid", "vault_url", "name", "version"),
    [
        (KID, "https://contoso-kv.vault.azure.net", "kek", "0123456789abcdef0123456789abcdef"),
        (
            "https://contoso.managedhsm.azure.net/keys/my-kek/0123456789ABCDEF0123456789abcdef",
            "https://contoso.managedhsm.azure.net",
            "my-kek",
            "0123456789ABCDEF0123456789abcdef",
        ),
        ("https://127.0.0.1:8443/keys/kek/v1", "https://127.0.0.1:8443", "kek", "v1"),
        ("https://localhost:9000/keys/k/abc", "https://localhost:9000", "k", "abc"),
    ],
)
def test_parse_kid_accepts_versioned_vault_urls(kid, vault_url, name, version):
    parsed = parse_kid(kid)
    assert (parsed.vault_url, parsed.name, parsed.version) == (vault_url, name, version)
    assert parsed.kid == kid


@pytest.mark.parametrize(
    ("kid", "why"),
    [
        ("", "empty"),
        ("https://contoso-kv.vault.azure.net/keys/kek", "not a /keys/<name>/<version>"),
        ("https://contoso-kv.vault.azure.net/keys/kek/", "has no version"),
        ("https://contoso-kv.vault.azure.net/keys/kek/v1", "invalid version"),
        ("http://contoso-kv.vault.azure.net/keys/kek/" + "0" * 32, "not a plain https URL"),
        ("https://example.com/keys/kek/" + "0" * 32, "not on a Key Vault or Managed HSM host"),
        ("https://contoso-kv.vault.azure.net/secrets/kek/" + "0" * 32, "/keys/<name>/<version>"),
        ("https://127.0.0.1/keys/kek/v1", "has no port"),
        ("https://contoso-kv.vault.azure.net/keys/kek/" + "0" * 32 + "?x=1", "plain https"),
        ("https://contoso-kv.vault.azure.net:8443/keys/kek/" + "0" * 32, "not on a Key Vault"),
    ],
)
def test_parse_kid_refuses_anything_else(kid, why):
    with pytest.raises(ByokFormatError, match=why):
        parse_kid(kid)
