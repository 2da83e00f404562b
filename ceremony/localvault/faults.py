"""localvault.faults: injected failures for drills and tests (503, 429, drop after commit).

Owns the fault spec syntax and the countdown of how often each fault fires. Never changes what an
operation does when it is allowed to run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ceremony.errors import UsageError
from ceremony.localvault.errors import ApiError

KINDS = ("503", "429", "drop-after-commit")
OPERATIONS = (
    "create",
    "import",
    "get",
    "list",
    "versions",
    "update",
    "delete",
    "get-deleted",
    "list-deleted",
    "recover",
    "purge",
    "sign",
    "verify",
    "encrypt",
    "decrypt",
    "wrapkey",
    "unwrapkey",
    "rng",
    "*",
)
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class Fault:
    """Make `operation` fail `times` times in the way `kind` says."""

    operation: str
    kind: str
    times: int = 1

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """'op:kind[:times]', e.g. 'import:503', 'import:429:2', 'import:drop-after-commit'."""
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise UsageError(
                f"Fault {spec!r} is not of the form OPERATION:KIND[:TIMES].",
                "Write for example import:503, import:429:2 or import:drop-after-commit.",
            )
        operation, kind = parts[0].lower(), parts[1].lower()
        if operation not in OPERATIONS:
            raise UsageError(
                f"Fault operation {parts[0]!r} is unknown.", f"Use one of {', '.join(OPERATIONS)}."
            )
        if kind not in KINDS:
            raise UsageError(
                f"Fault kind {parts[1]!r} is unknown.", f"Use one of {', '.join(KINDS)}."
            )
        times = 1
        if len(parts) == 3:
            if not parts[2].isdigit() or int(parts[2]) < 1:
                raise UsageError(
                    f"Fault count {parts[2]!r} is not a positive number.",
                    "Write e.g. import:503:2.",
                )
            times = int(parts[2])
        return cls(operation, kind, times)

    def as_error(self) -> ApiError:
        """The answer a refusing fault (503, 429 with Retry-After) sends instead of the result."""
        if self.kind == "429":
            return ApiError(
                429,
                "Throttled",
                "Injected fault (drill): too many requests.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return ApiError(503, "ServiceUnavailable", "Injected fault (drill): service unavailable.")

    def __str__(self) -> str:
        return f"{self.operation}:{self.kind}:{self.times}"


class FaultPlan:
    """The faults still to fire; thread-safe, each firing counts down its fault."""

    def __init__(self, faults: Iterable[Fault | str] = ()) -> None:
        self.faults = [f if isinstance(f, Fault) else Fault.parse(f) for f in faults]
        self._fired = [0] * len(self.faults)
        self._lock = threading.Lock()

    def take(self, operation: str, *, after_commit: bool) -> Fault | None:
        """The fault to apply to this request now, if any (and count it as fired)."""
        with self._lock:
            for index, fault in enumerate(self.faults):
                if fault.operation not in (operation, "*") or self._fired[index] >= fault.times:
                    continue
                if (fault.kind == "drop-after-commit") != after_commit:
                    continue
                self._fired[index] += 1
                return fault
        return None
