"""wrap_paths: the names of the two ways a key is wrapped for Azure, and of the choice between them.

Shared by the plan, the command line and ceremony.hsm so each spells them once; names only.
"""

from __future__ import annotations

from typing import Literal

AUTO = "auto"  # what the self-test picks: native where it passes, else two-step
NATIVE = "native"  # CKM_RSA_AES_KEY_WRAP in one call
TWO_STEP = "two-step"  # CKM_AES_KEY_WRAP_KWP/PAD under an ephemeral key + CKM_RSA_PKCS_OAEP

WrapChoice = Literal["auto", "native", "two-step"]
WRAP_CHOICES: tuple[str, ...] = (AUTO, NATIVE, TWO_STEP)
# Who chose, as the self-test's record and refusals name it ("chosen by ...").
PLAN_CHOICE = "the plan's [hsm] wrap"
