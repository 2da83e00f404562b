"""Raw HTTPS requests the Azure SDK never sends: bad input gets Azure's error shape, never a 500.

Also the server-side paths the SDK short-circuits locally (verify, AES key wrap).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl

import httpx
import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from ceremony.localvault.service import VaultService

API = {"api-version": "7.5"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def http(local_vault):
    context = ssl.create_default_context(cafile=str(local_vault.ca_path))
    token = (local_vault.state_dir / "token").read_text().strip()
    with httpx.Client(
        base_url=local_vault.url, verify=context, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


@pytest.fixture(scope="module")
def ec_key(http):
    response = http.post("/keys/raw-ec/create", params=API, json={"kty": "EC-HSM", "crv": "P-256"})
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


def key_names(http) -> list[str]:
    return sorted(item["kid"] for item in http.get("/keys", params=API).json()["value"])


def test_unauthenticated_requests_get_the_bearer_challenge(local_vault) -> None:
    context = ssl.create_default_context(cafile=str(local_vault.ca_path))
    with httpx.Client(base_url=local_vault.url, verify=context) as anonymous:
        response = anonymous.get("/keys", params=API)
        assert_error(response, 401, "Unauthorized")
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer authorization=")
        assert 'resource="https://vault.azure.net"' in challenge
        wrong = anonymous.get("/keys", params=API, headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "Unauthorized")


def test_missing_api_version_is_a_bad_parameter(http) -> None:
    error = assert_error(http.get("/keys"), 400, "BadParameter")
    assert "api-version" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        json.dumps({"kty": 5}).encode(),
        json.dumps({"kty": "EC-HSM", "key_ops": "sign"}).encode(),
        json.dumps({"kty": "EC-HSM", "key_ops": ["sign", 3]}).encode(),
        json.dumps({"kty": "EC-HSM", "attributes": {"enabled": "yes"}}).encode(),
        json.dumps({"kty": "EC-HSM", "attributes": []}).encode(),
        json.dumps({"kty": "EC-HSM", "tags": {"a": 1}}).encode(),
        json.dumps({"kty": "RSA-HSM", "key_size": "2048"}).encode(),
        json.dumps({"kty": "RSA-HSM", "key_size": True}).encode(),
        json.dumps({"kty": "EC-HSM", "crv": "P-256", "release_policy": {"data": "!!"}}).encode(),
        json.dumps({"kty": "oct-HSM"}).encode(),
        json.dumps({"kty": "RSA-HSM", "key_ops": ["fly"]}).encode(),
        b"",
    ],
)
def test_malformed_create_bodies_are_refused_and_change_nothing(http, body) -> None:
    before = key_names(http)
    response = http.post(
        "/keys/malformed/create",
        params=API,
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "BadParameter")
    assert key_names(http) == before


@pytest.mark.parametrize(
    "body",
    [
        {"key": "RSA"},
        {"key": {"kty": "RSA-HSM", "key_hsm": "%%%"}},
        {"key": {"kty": "RSA-HSM", "key_hsm": b64(b"{}")}},
        {"key": {"kty": "EC", "crv": "P-256", "d": "AA", "x": 1}},
        {"key": {"kty": "RSA", "n": "AQAB"}},
        {"key": {"kty": "dsa"}},
        {"key": {"kty": "oct", "k": b64(b"ten bytes!")}},
        {},
    ],
)
def test_malformed_import_bodies_are_refused(http, body) -> None:
    before = key_names(http)
    assert_error(http.put("/keys/malformed", params=API, json=body), 400, "BadParameter")
    assert key_names(http) == before


@pytest.mark.parametrize("name", ["bad_name", "with.dot", "a" * 128, "sp%20ace", "%C3%A9"])
def test_names_outside_the_allowed_alphabet_are_refused(http, name) -> None:
    before = key_names(http)
    response = http.post(f"/keys/{name}/create", params=API, json={"kty": "EC-HSM"})
    assert_error(response, 400, "BadParameter")
    assert_error(http.get(f"/keys/{name}", params=API), 400, "BadParameter")
    assert key_names(http) == before


def test_oversized_bodies_are_refused(http) -> None:
    padding = "x" * (300 * 1024)
    response = http.post(
        "/keys/big/create", params=API, json={"kty": "EC-HSM", "tags": {"pad": padding}}
    )
    assert_error(response, 413, "RequestTooLarge")


def test_unknown_paths_and_methods_answer_in_azure_shape(http) -> None:
    assert_error(http.get("/secrets/x", params=API), 404, "NotFound")
    assert_error(http.post("/keys", params=API), 405, "MethodNotAllowed")
    assert_error(http.get("/keys/missing", params=API), 404, "KeyNotFound")
    assert_error(http.get("/keys", params={**API, "maxresults": "lots"}), 400, "BadParameter")
    assert_error(http.get("/keys", params={**API, "maxresults": "99"}), 400, "BadParameter")


def test_latest_version_with_and_without_trailing_slash(http, ec_key) -> None:
    for path in ("/keys/raw-ec", "/keys/raw-ec/", "/keys/RAW-EC/"):
        response = http.get(path, params=API)
        assert response.status_code == 200
        assert response.json()["key"]["kid"] == ec_key["key"]["kid"]


def test_server_side_verify(http, ec_key) -> None:
    kid = ec_key["key"]["kid"].split("/keys/", 1)[1]
    digest = hashlib.sha256(b"raw").digest()
    signed = http.post(f"/keys/{kid}/sign", params=API, json={"alg": "ES256", "value": b64(digest)})
    signature = signed.json()["value"]
    check = {"alg": "ES256", "digest": b64(digest), "value": signature}
    assert http.post(f"/keys/{kid}/verify", params=API, json=check).json() == {"value": True}
    check["digest"] = b64(hashlib.sha256(b"other").digest())
    assert http.post(f"/keys/{kid}/verify", params=API, json=check).json() == {"value": False}
    short = {"alg": "ES256", "value": b64(b"short")}
    assert_error(http.post(f"/keys/{kid}/sign", params=API, json=short), 400, "BadParameter")
    assert_error(
        http.post(f"/keys/{kid}/encrypt", params=API, json={"alg": "RSA-OAEP", "value": "AA"}),
        403,
        "Forbidden",
    )


def test_server_side_aes_key_wrap(local_managed_hsm) -> None:
    context = ssl.create_default_context(cafile=str(local_managed_hsm.ca_path))
    token = (local_managed_hsm.state_dir / "token").read_text().strip()
    secret = os.urandom(24)
    with httpx.Client(
        base_url=local_managed_hsm.url,
        verify=context,
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        imported = http.put(
            "/keys/kw", params=API, json={"key": {"kty": "oct-HSM", "k": b64(secret)}}
        ).json()
        kid = imported["key"]["kid"].split("/keys/", 1)[1]
        challenge = os.urandom(32)
        wrapped = http.post(
            f"/keys/{kid}/wrapkey", params=API, json={"alg": "A192KW", "value": b64(challenge)}
        ).json()["value"]
        padded = base64.urlsafe_b64decode(wrapped + "=" * (-len(wrapped) % 4))
        assert aes_key_unwrap(secret, padded) == challenge
        back = http.post(
            f"/keys/{kid}/unwrapkey",
            params=API,
            json={"alg": "A192KW", "value": b64(aes_key_wrap(secret, challenge))},
        ).json()["value"]
        assert back == b64(challenge)
        wrong_size = {"alg": "A256KW", "value": b64(challenge)}
        assert_error(
            http.post(f"/keys/{kid}/wrapkey", params=API, json=wrong_size), 400, "BadParameter"
        )
        odd = {"key": {"kty": "oct-HSM", "k": b64(b"ten bytes!")}}
        assert_error(http.put("/keys/odd", params=API, json=odd), 400, "BadParameter")
        tampered = {"alg": "A192KW", "value": b64(b"\0" * 40)}
        assert_error(
            http.post(f"/keys/{kid}/unwrapkey", params=API, json=tampered), 400, "BadParameter"
        )


def test_unexpected_failures_are_a_500_without_details(http, monkeypatch) -> None:
    def explode(self, body):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(VaultService, "random_bytes", explode)
    response = http.post("/rng", params=API, json={"count": 8})
    error = assert_error(response, 500, "InternalError")
    assert "internal detail" not in response.text
    assert "see its log" in error["message"]
