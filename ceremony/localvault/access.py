"""localvault.access: how a client reaches a running local vault (URL, CA bundle, token).

Owns the client side only and imports nothing of the server, so the vault client can use it
cheaply. Never prints or logs the token.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ceremony.errors import VaultError

TOKEN_LIFETIME = 3600


class StaticTokenCredential:
    """An azure-core TokenCredential that always presents the local vault's issued token."""

    def __init__(self, token_path: Path) -> None:
        self._token_path = token_path

    def _token(self) -> str:
        try:
            return self._token_path.read_text().strip()
        except OSError as exc:
            raise VaultError(
                f"Cannot read the local vault token {self._token_path}: {exc.strerror}.",
                "Start the vault once with that --state directory, as the same user.",
            ) from exc

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token(), int(time.time()) + TOKEN_LIFETIME)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token(), int(time.time()) + TOKEN_LIFETIME)

    def close(self) -> None:
        """Nothing to release; present for the TokenCredential protocol."""


class LocalVaultAccess:
    """Client-side facts about the vault serving from `state_dir`."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir).expanduser().resolve()

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def url(self) -> str:
        """The running vault's URL, from the `url` file it writes once it is serving."""
        try:
            return (self.state_dir / "url").read_text().strip()
        except FileNotFoundError as exc:
            raise VaultError(
                f"No local vault is serving from {self.state_dir}.",
                f"Start one with: ceremony localvault serve --state {self.state_dir}",
            ) from exc

    @property
    def mode(self) -> str | None:
        """How the running vault judges imports: 'strict' (all Azure refuses) or 'rehearsal'
        (SoftHSM2 2.6's zero padding accepted with a warning); None when it is not serving."""
        try:
            return (self.state_dir / "mode").read_text().strip()
        except FileNotFoundError:
            return None

    def credential(self) -> StaticTokenCredential:
        return StaticTokenCredential(self.state_dir / "token")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every azure-keyvault client needs for the local vault."""
        return {"connection_verify": str(self.ca_path), "verify_challenge_resource": False}

    def key_client(self, **kwargs: Any) -> Any:
        """An azure KeyClient for this vault; extra kwargs go to the client (e.g. retry_total)."""
        from azure.keyvault.keys import KeyClient

        return KeyClient(self.url, self.credential(), **{**self.client_kwargs(), **kwargs})

    def crypto_client(self, key_id: str, **kwargs: Any) -> Any:
        """An azure CryptographyClient for `key_id` (a kid of this vault)."""
        from azure.keyvault.keys.crypto import CryptographyClient

        return CryptographyClient(key_id, self.credential(), **{**self.client_kwargs(), **kwargs})
