"""plan_problems: every problem of a plan, each named by its field, in one error.

Turns the schema library's validation errors into our sentences ("Plan field keys[0].size must be
int, not str.") with a remedy each, and carries them together. Never reads the plan itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from ceremony.errors import PlanError

KIND = "plan"
# What a TOML value must be, by the schema library's error type.
EXPECTED = {
    "string_type": "text",
    "int_type": "int",
    "bool_type": "bool",
    "list_type": "list",
    "tuple_type": "list",
    "dict_type": "table",
    "model_type": "table",
    "model_attributes_type": "table",
    "datetime_type": "a date and time",
    "path_type": "a path",
}


@dataclass(frozen=True)
class PlanProblem:
    """One wrong field: where it is, what is wrong with it, and what to do."""

    where: str
    text: str
    remedy: str

    def sentence(self) -> str:
        text = self.text.rstrip(".")
        return f"Plan field {self.where} {text}." if self.where else f"Plan {text}."


class PlanProblems(PlanError):
    """A plan with one or more wrong fields, all found in one reading."""

    def __init__(self, path: Path, problems: Sequence[PlanProblem]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0].sentence(), self.problems[0].remedy)
            return
        lines = [f"  - {p.sentence()} {p.remedy}".rstrip() for p in self.problems]
        super().__init__(
            f"Plan {path} has {len(self.problems)} problems:\n" + "\n".join(lines),
            "Correct each one, then check the plan again.",
        )

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return super().__str__()
        return f"{self.message}\n{self.remedy}"


def problem(text: str, remedy: str, *, field: str = "") -> PydanticCustomError:
    """A validation failure in our words: `text` reads after "Plan field <where>"."""
    return PydanticCustomError(KIND, "{text}", {"text": text, "remedy": remedy, "field": field})


def where(location: Iterable[Any]) -> str:
    """('keys', 0, 'size') -> 'keys[0].size'."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problems_of(error: ValidationError, hints: Mapping[str, str]) -> list[PlanProblem]:
    """Each of the schema library's errors as a PlanProblem, in the order of the file."""
    found = []
    for item in error.errors(include_url=False):
        place = where(item["loc"])
        field = str(item["loc"][-1]) if item["loc"] else ""
        kind, value = item["type"], item.get("input")
        context = item.get("ctx") or {}
        if kind == KIND:
            place = f"{place}.{context['field']}" if context["field"] else place
            found.append(PlanProblem(place, context["text"], context["remedy"]))
        elif kind == "missing":
            hint = hints.get(field) or f"Add {field} to [{where(item['loc'][:-1]) or 'the plan'}]."
            found.append(PlanProblem(place, "is missing", hint))
        elif kind == "extra_forbidden":
            found.append(
                PlanProblem(place, "is not a known field", f"Remove or correct {field!r}.")
            )
        elif kind == "too_short":
            found.append(PlanProblem(place, "is empty", hints.get(field, "Give at least one.")))
        elif kind in EXPECTED:
            text = f"must be {EXPECTED[kind]}, not {type(value).__name__}"
            found.append(PlanProblem(place, text, hints.get(field, "Fix its type.")))
        else:
            found.append(PlanProblem(place, f"is {value!r}: {item['msg'].lower()}", "Fix it."))
    return found
