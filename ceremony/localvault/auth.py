"""localvault.auth: the bearer-token gate, answering like Azure so the SDK's challenge flow works.

Owns the challenge text and the token comparison. Never logs or returns the token.
"""

from __future__ import annotations

import hmac

from ceremony.localvault.errors import unauthorized

# The SDK takes the tenant from the authority's path; values must not contain '='.
AUTHORITY = "https://login.localvault.invalid/localvault"
RESOURCES = {False: "https://vault.azure.net", True: "https://managedhsm.azure.net"}


class BearerGate:
    """Accepts exactly the token the vault issued; everything else gets the 401 challenge."""

    def __init__(self, token: str, *, managed_hsm: bool) -> None:
        self._expected = f"Bearer {token}".encode()
        self.challenge = f'Bearer authorization="{AUTHORITY}", resource="{RESOURCES[managed_hsm]}"'

    def check(self, authorization: str | None) -> None:
        """Raise the 401 challenge unless `authorization` carries the issued token."""
        presented = (authorization or "").encode("utf-8", errors="replace")
        if not hmac.compare_digest(presented, self._expected):
            raise unauthorized(self.challenge)
