"""localvault.bundles: the JSON the vault answers with (KeyBundle, KeyItem, deleted forms).

Owns response shapes and identifiers (kids on the vault's own host and port). Never reads the
store or private material.
"""

from __future__ import annotations

from typing import Any

from ceremony.localvault.store import RETENTION_DAYS, DeletedInfo, KeyRecord

RECOVERY_LEVEL = "Recoverable+Purgeable"


def kid(base_url: str, name: str, version: str | None = None) -> str:
    """A key identifier; versioned unless `version` is None."""
    return f"{base_url}/keys/{name}" + (f"/{version}" if version is not None else "")


def attributes(record: KeyRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "enabled": record.enabled,
        "created": record.created,
        "updated": record.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RETENTION_DAYS,
    }
    if record.not_before is not None:
        out["nbf"] = record.not_before
    if record.expires is not None:
        out["exp"] = record.expires
    if record.exportable is not None:
        out["exportable"] = record.exportable
    return out


def _with_optional(out: dict[str, Any], record: KeyRecord) -> dict[str, Any]:
    if record.tags is not None:
        out["tags"] = record.tags
    if record.release_policy is not None:
        out["release_policy"] = record.release_policy
    return out


def key_bundle(base_url: str, record: KeyRecord) -> dict[str, Any]:
    """KeyBundle: the public JWK with a versioned kid, attributes, tags, release policy."""
    key = {
        "kid": kid(base_url, record.name, record.version),
        "kty": record.kty,
        "key_ops": record.key_ops,
        **record.public,
    }
    return _with_optional({"key": key, "attributes": attributes(record)}, record)


def key_item(base_url: str, record: KeyRecord, *, versioned: bool) -> dict[str, Any]:
    """KeyItem, as listed: the kid is versioned only when listing a key's versions."""
    item = {
        "kid": kid(base_url, record.name, record.version if versioned else None),
        "attributes": attributes(record),
    }
    if record.tags is not None:
        item["tags"] = record.tags
    return item


def _deleted_fields(base_url: str, record: KeyRecord, info: DeletedInfo) -> dict[str, Any]:
    return {
        "recoveryId": f"{base_url}/deletedkeys/{record.name}",
        "deletedDate": info.deleted,
        "scheduledPurgeDate": info.purge_at,
    }


def deleted_bundle(base_url: str, record: KeyRecord, info: DeletedInfo) -> dict[str, Any]:
    return {**key_bundle(base_url, record), **_deleted_fields(base_url, record, info)}


def deleted_item(base_url: str, record: KeyRecord, info: DeletedInfo) -> dict[str, Any]:
    return {
        **key_item(base_url, record, versioned=False),
        **_deleted_fields(base_url, record, info),
    }


def page(values: list[dict[str, Any]], next_link: str | None) -> dict[str, Any]:
    return {"value": values, "nextLink": next_link}
