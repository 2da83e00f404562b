"""vault: the online half of the ceremony — Azure Key Vault / Managed HSM through the Azure SDK.

KEK creation, retrieval and checks; .byok import exactly once; proof the cloud holds the HSM's key.
Never handles private or secret key material: only public halves, wrapped packages and challenges.
"""

from ceremony.publickey import load_public_key, public_key_from_jwk, spki_pem
from ceremony.vault.connect import RetrySettings, VaultConnection, connect
from ceremony.vault.importer import (
    IMPORT_ID_TAG,
    ImportOptions,
    ImportResult,
    ImportTarget,
    find_imported,
    import_byok,
)
from ceremony.vault.kek import (
    Kek,
    check_fingerprint,
    check_kek,
    create_kek,
    fetch_kek,
    kek_from_file,
    kek_from_key,
    write_kek,
)
from ceremony.vault.proof import (
    PossessionProof,
    PublicKeyMatch,
    compare_public_keys,
    prove_asymmetric,
    prove_unwrap,
)
from ceremony.vault.record import (
    ImportOutcome,
    import_and_prove,
    import_record_path,
    write_import_record,
)

__all__ = [
    "IMPORT_ID_TAG",
    "ImportOptions",
    "ImportOutcome",
    "ImportResult",
    "ImportTarget",
    "Kek",
    "PossessionProof",
    "PublicKeyMatch",
    "RetrySettings",
    "VaultConnection",
    "check_fingerprint",
    "check_kek",
    "compare_public_keys",
    "connect",
    "create_kek",
    "fetch_kek",
    "find_imported",
    "import_and_prove",
    "import_byok",
    "import_record_path",
    "kek_from_file",
    "kek_from_key",
    "load_public_key",
    "prove_asymmetric",
    "prove_unwrap",
    "public_key_from_jwk",
    "spki_pem",
    "write_import_record",
    "write_kek",
]
