"""steps: one function per notebook step; each reads the plan and workspace, does its phase
through the library, records it in the transcript and returns a small result to display.

Notebooks call only these. No step takes a PIN as an argument or returns key material.
"""

from ceremony.steps.context import Context, StepResult, begin, complete
from ceremony.steps.evidence import evidence
from ceremony.steps.generate import generate
from ceremony.steps.kek import kek
from ceremony.steps.preflight import preflight
from ceremony.steps.upload import upload
from ceremony.steps.wrap import wrap

__all__ = [
    "Context",
    "StepResult",
    "begin",
    "complete",
    "evidence",
    "generate",
    "kek",
    "preflight",
    "upload",
    "wrap",
]
