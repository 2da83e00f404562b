"""localvault.errors: the KeyVaultError responses the local vault returns, shaped as Azure's.

Owns status codes, error codes and the JSON error body. Never includes a stack trace or key
material.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal sent as `{"error": {"code", "message", "innererror"?}}` with a status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The KeyVaultError document for this refusal."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}


def bad_parameter(message: str) -> ApiError:
    """400 BadParameter: the request itself is wrong."""
    return ApiError(400, "BadParameter", message)


def not_found(message: str) -> ApiError:
    """404 KeyNotFound: no such key, version or deleted key."""
    return ApiError(404, "KeyNotFound", message)


def forbidden(message: str) -> ApiError:
    """403 Forbidden with innererror KeyOperationForbidden, as Azure answers a disallowed key op."""
    return ApiError(403, "Forbidden", message, inner_code="KeyOperationForbidden")


def conflict(message: str) -> ApiError:
    """409 Conflict: the name is held by a deleted but recoverable key."""
    return ApiError(409, "Conflict", message)


def unauthorized(challenge: str) -> ApiError:
    """401 with the bearer challenge the Azure SDK expects before it sends a token."""
    return ApiError(
        401,
        "Unauthorized",
        "AKV10000: Request is missing a Bearer or PoP token.",
        headers={"WWW-Authenticate": challenge},
    )


def internal_error() -> ApiError:
    """500 for a fault in the vault itself; details stay in the server log."""
    return ApiError(500, "InternalError", "The local vault failed unexpectedly; see its log.")
