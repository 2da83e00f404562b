"""The connection layer: URL rules, retry bounds, and which requests the SDK may repeat."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core import PipelineClient
from azure.core.rest import HttpRequest

from ceremony.errors import UsageError
from ceremony.vault.connect import (
    CeremonyRetryPolicy,
    RetrySettings,
    check_vault_url,
    connect,
    vault_host,
)


class Script:
    """Answers per path: a list of (status, headers) consumed in order, then 200."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.hits: dict[str, int] = {}


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.hits[self.path] = script.hits.get(self.path, 0) + 1
            queue = script.answers.get(self.path, [])
            status, headers = queue.pop(0) if queue else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_PUT = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", script
    httpd.shutdown()
    httpd.server_close()


FAST = RetrySettings(backoff_factor=0.01, backoff_max=0.05, retry_after_max=0.2)


def _send(base: str, method: str, path: str, settings: RetrySettings = FAST) -> int:
    client = PipelineClient(base, policies=[CeremonyRetryPolicy(settings)])
    return client.send_request(HttpRequest(method, f"{base}{path}", json={})).status_code


def test_get_is_retried_on_503(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers["/keys/k/"] = [(503, {}), (503, {})]
    assert _send(base, "GET", "/keys/k/") == 200
    assert script.hits["/keys/k/"] == 3


def test_import_put_is_not_repeated_after_a_5xx(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers["/keys/k"] = [(503, {}), (503, {"Retry-After": "0"})]
    assert _send(base, "PUT", "/keys/k") == 503
    assert script.hits["/keys/k"] == 1


def test_throttled_put_is_retried_after_retry_after(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers["/keys/k"] = [(429, {"Retry-After": "1"})]
    started = time.monotonic()
    assert _send(base, "PUT", "/keys/k") == 200
    assert script.hits["/keys/k"] == 2
    assert time.monotonic() - started < 1  # Retry-After of 1 s capped at 0.2 s


def test_create_post_not_repeated_but_sign_post_is(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers["/keys/k/create"] = [(503, {})]
    script.answers["/keys/k/v1/sign"] = [(503, {})]
    assert _send(base, "POST", "/keys/k/create") == 503
    assert _send(base, "POST", "/keys/k/v1/sign") == 200
    assert script.hits == {"/keys/k/create": 1, "/keys/k/v1/sign": 2}


def test_status_retries_are_bounded(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers["/keys/k/"] = [(500, {})] * 20
    assert _send(base, "GET", "/keys/k/") == 500
    assert script.hits["/keys/k/"] == FAST.status + 1


def test_retry_settings_refuse_unbounded_values() -> None:
    with pytest.raises(UsageError):
        RetrySettings(total=100)
    with pytest.raises(UsageError):
        RetrySettings(backoff_max=3600)
    with pytest.raises(UsageError):
        RetrySettings(retry_after_max=3600)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://Contoso.vault.azure.net/", "contoso.vault.azure.net"),
        ("https://contoso.vault.azure.net:443", "contoso.vault.azure.net"),
        ("https://127.0.0.1:8443", "127.0.0.1:8443"),
    ],
)
def test_vault_host_normalises(url: str, host: str) -> None:
    assert vault_host(url) == host


@pytest.mark.parametrize(
    "url",
    [
        "http://contoso.vault.azure.net",
        "https://example.com",
        "https://contoso.vault.azure.net/keys/k",
        "contoso",
    ],
)
def test_check_vault_url_refuses(url: str) -> None:
    with pytest.raises(UsageError):
        check_vault_url(url)


def test_connect_needs_a_vault() -> None:
    with pytest.raises(UsageError, match="No vault given"):
        connect(None)


def test_connect_to_azure_uses_default_credential() -> None:
    conn = connect("https://contoso.managedhsm.azure.net/")
    assert conn.url == "https://contoso.managedhsm.azure.net"
    assert conn.flavour == "managed-hsm"
    assert type(conn.credential).__name__ == "DefaultAzureCredential"
    assert not conn.local


def test_vault_errors_are_one_capped_line() -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from ceremony.errors import VaultError
    from ceremony.vault.connect import vault_errors

    with pytest.raises(VaultError) as caught, vault_errors("fetch the KEK", "https://v"):
        raise ClientAuthenticationError(message="DefaultAzureCredential failed:\n" + "x " * 500)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 600
    assert text.startswith(
        "Could not fetch the KEK: the vault at https://v refused the credentials"
    )
