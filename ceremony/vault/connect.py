"""vault.connect: how the ceremony reaches a vault — credential, TLS trust, retry bounds, errors.

One code path for Azure (DefaultAzureCredential) and the local vault (its CA and token). Never
retries a non-idempotent request whose outcome is unknown; the importer reconciles those itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import RetryPolicy

from ceremony.errors import UsageError, VaultError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.keys import KeyClient

# Methods the SDK may safely repeat after an unknown outcome. A Key Vault PUT is an import and a
# POST .../create makes a key: each adds a version when it commits, so such a request is repeated
# only when the vault says it did nothing (429). Cryptographic POSTs change nothing and may repeat.
_NOT_IDEMPOTENT = frozenset({"PUT", "POST", "PATCH"})
_STATELESS_POSTS = ("/sign", "/verify", "/wrapkey", "/unwrapkey", "/encrypt", "/decrypt")
_AZURE_SUFFIXES = (".vault.azure.net", ".managedhsm.azure.net")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class RetrySettings:
    """Bounds on the SDK's retries: wait a little for a busy vault, never for an hour."""

    total: int = 5
    connect: int = 2
    read: int = 2
    status: int = 4
    backoff_factor: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 30.0
    connection_timeout: float = 10.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not (0 <= self.total <= 10 and 0 <= self.connect <= 5 and 0 <= self.read <= 5):
            raise UsageError("Retry counts must be between 0 and 10.", "Choose smaller bounds.")
        if not (0 <= self.backoff_factor <= 5 and 0 < self.backoff_max <= 60):
            raise UsageError("Retry backoff must be at most 60 seconds.", "Choose smaller bounds.")
        if not 0 < self.retry_after_max <= 300:
            raise UsageError("Retry-After is honoured for at most 300 seconds.", "Lower the cap.")


class CeremonyRetryPolicy(RetryPolicy):
    """azure-core's retry policy with a capped Retry-After and no blind retry of imports."""

    def __init__(self, settings: RetrySettings) -> None:
        super().__init__(
            retry_total=settings.total,
            retry_connect=settings.connect,
            retry_read=settings.read,
            retry_status=settings.status,
            retry_backoff_factor=settings.backoff_factor,
            retry_backoff_max=settings.backoff_max,
        )
        self.retry_after_max = settings.retry_after_max

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        """Drop non-idempotent methods: after a dropped answer the import may already be done."""
        settings = super().configure_retries(options)
        settings["methods"] = frozenset(m.upper() for m in settings["methods"]) - _NOT_IDEMPOTENT
        return settings

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        """Repeat a non-idempotent request only when throttled (the vault did nothing then)."""
        request = response.http_request
        if (
            _changes_state(request.method, request.url)
            and response.http_response.status_code != 429
        ):
            return False
        return bool(super().is_retry(settings, response))

    def get_retry_after(self, response: Any) -> float | None:
        """Honour Retry-After, but never longer than the configured cap."""
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.retry_after_max)


def _changes_state(method: str, url: str) -> bool:
    method = method.upper()
    if method == "POST":
        return not urlsplit(url).path.lower().rstrip("/").endswith(_STATELESS_POSTS)
    return method in _NOT_IDEMPOTENT


@dataclass
class VaultConnection:
    """A vault URL with the credential and transport settings every client of it shares."""

    url: str
    credential: TokenCredential
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    retry: RetrySettings = field(default_factory=RetrySettings)
    local: bool = False

    @property
    def host(self) -> str:
        """host[:port] in lower case, the identity used to compare vaults."""
        return vault_host(self.url)

    @property
    def flavour(self) -> str | None:
        """'keyvault' or 'managed-hsm' for Azure hosts; None when the URL does not tell."""
        hostname = urlsplit(self.url).hostname or ""
        if hostname.endswith(".managedhsm.azure.net"):
            return "managed-hsm"
        if hostname.endswith(".vault.azure.net"):
            return "keyvault"
        return None

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any azure-keyvault-keys client of this vault."""
        return {
            **self.client_kwargs,
            "retry_policy": CeremonyRetryPolicy(self.retry),
            "connection_timeout": self.retry.connection_timeout,
            "read_timeout": self.retry.read_timeout,
        }

    def key_client(self) -> KeyClient:
        """A KeyClient on this vault with the ceremony's retry bounds."""
        from azure.keyvault.keys import KeyClient

        return KeyClient(self.url, self.credential, **self.sdk_kwargs())


def vault_host(url: str) -> str:
    """Normalise a vault or key URL to host[:port] (default port dropped) for comparison."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(
            f"{url!r} is not an https vault URL.", "Use https://<name>.vault.azure.net."
        )
    port = parts.port
    host = parts.hostname.lower()
    return host if port in (None, 443) else f"{host}:{port}"


def check_vault_url(url: str) -> str:
    """Accept an Azure Key Vault / Managed HSM URL or a local https vault; return it normalised."""
    host = vault_host(url)
    hostname = (urlsplit(url).hostname or "").lower()
    if not (hostname.endswith(_AZURE_SUFFIXES) or hostname in _LOCAL_HOSTS):
        raise UsageError(
            f"{url!r} is not a Key Vault or Managed HSM URL.",
            "Use https://<name>.vault.azure.net or https://<name>.managedhsm.azure.net.",
        )
    parts = urlsplit(url)
    if parts.path.strip("/"):
        raise UsageError(f"{url!r} has a path; the vault URL is the host only.", "Drop the path.")
    return f"https://{host}"


def connect(
    vault_url: str | None = None,
    *,
    local_vault_dir: Path | str | None = None,
    retry: RetrySettings | None = None,
) -> VaultConnection:
    """Connect to Azure with DefaultAzureCredential, or to the local vault serving from a state dir.

    With a local vault the URL defaults to the one the vault wrote; a different URL is refused so
    that a ceremony never trusts one vault's CA for another.
    """
    retry = retry or RetrySettings()
    if local_vault_dir is not None:
        from ceremony.localvault.access import LocalVaultAccess

        access = LocalVaultAccess(Path(local_vault_dir))
        local_url = check_vault_url(access.url)
        given = vault_url and vault_host(check_vault_url(vault_url))
        if given and given != vault_host(local_url):
            raise UsageError(
                f"--vault {vault_url} is not the local vault in {local_vault_dir} ({local_url}).",
                "Drop --vault or point --local-vault at that vault's state directory.",
            )
        return VaultConnection(
            local_url, access.credential(), dict(access.client_kwargs()), retry, local=True
        )
    if vault_url is None:
        raise UsageError("No vault given.", "Pass --vault URL, or --local-vault DIR to rehearse.")
    from azure.identity import DefaultAzureCredential

    return VaultConnection(check_vault_url(vault_url), DefaultAzureCredential(), {}, retry)


_MAX_DETAIL = 300


def _one_line(text: str) -> str:
    """Collapse to one line and cap the length (DefaultAzureCredential explains at length)."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"


def describe_azure_error(exc: AzureError) -> str:
    """The vault's own error code and message, on one line."""
    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        status = exc.status_code
        if error is not None and (error.code or error.message):
            return _one_line(f"HTTP {status} {error.code or ''}: {error.message or ''}")
        if status is None:
            return _one_line(str(exc.message or exc))
        return _one_line(f"HTTP {status}: {exc.reason or exc.message}")
    return _one_line(str(exc.message or exc).splitlines()[0] if str(exc) else type(exc).__name__)


@contextlib.contextmanager
def vault_errors(action: str, url: str) -> Iterator[None]:
    """Turn SDK exceptions into VaultError saying what was attempted and what to do.

    ResourceNotFoundError passes through: only the caller knows whether absence is an error.
    """
    try:
        yield
    except ResourceNotFoundError:
        raise
    except ClientAuthenticationError as exc:
        raise VaultError(
            f"Could not {action}: the vault at {url} refused the credentials "
            f"({describe_azure_error(exc)}).",
            "Sign in again (az login) or renew the token; for the local vault use its state "
            "directory with --local-vault.",
        ) from None
    except ServiceRequestError as exc:
        raise VaultError(
            f"Could not {action}: the vault at {url} is unreachable ({describe_azure_error(exc)}).",
            "Check the URL, the network and any proxy; for a rehearsal start the local vault.",
        ) from None
    except (ServiceResponseError, DecodeError) as exc:
        raise VaultError(
            f"Could not {action}: the connection to {url} broke before an answer arrived "
            f"({describe_azure_error(exc)}).",
            "Run the same command again; a finished import is recognised and not repeated.",
        ) from None
    except HttpResponseError as exc:
        remedy = "Fix what the vault names and run the command again."
        if exc.status_code == 403:
            remedy = "Grant this identity the needed key permissions (or RBAC role) on the vault."
        raise VaultError(
            f"Could not {action}: the vault refused ({describe_azure_error(exc)}).", remedy
        ) from None
    except AzureError as exc:
        raise VaultError(
            f"Could not {action}: {describe_azure_error(exc)}.",
            "Check the vault and the network, then run the command again.",
        ) from None
