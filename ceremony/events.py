"""events: the names of the transcript events that tell each key's story, shared by the phases
that record them and the verifier that requires them. Names only; no behaviour."""

from __future__ import annotations

KEY_GENERATING = "key-generating"
KEY_GENERATED = "key-generated"
KEY_ADOPTED = "key-adopted"
HALF_MADE_REMOVED = "half-made-key-removed"  # a key pair's public half, from an interrupted run
KEY_WRAPPED = "key-wrapped"
AES_CHALLENGE_WRAPPED = "aes-challenge-wrapped"
KEY_IMPORTED = "key-imported"
KEK_TRUSTED = "kek-trusted"
# The runner's notes: the air gap (which side ran a phase, and how it was cut off).
NOTE = "note"
WRAP_PATH_CHOSEN = "wrap-path-chosen"
