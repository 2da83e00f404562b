"""localvault.service: what each keys operation does, between the HTTP layer and the store.

Owns the decisions Azure makes: flavour and key_ops rules, BYOK import, disabled/expired keys,
soft delete. Never speaks HTTP and never returns private material.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from ceremony.localvault import bundles, byok_import, material, ops
from ceremony.localvault.codec import b64url_encode
from ceremony.localvault.errors import ApiError, bad_parameter, conflict, forbidden, not_found
from ceremony.localvault.params import Body, check_name, check_version
from ceremony.localvault.rules import RSA_SIZES, Flavour, check_size, family_of, resolve_key_ops
from ceremony.localvault.store import KeyRecord, Store

MAX_PAGE = 25
_OPERATIONS = {
    "sign": "sign",
    "verify": "verify",
    "encrypt": "encrypt",
    "decrypt": "decrypt",
    "wrapkey": "wrapKey",
    "unwrapkey": "unwrapKey",
}
_HSM_KTY = {"RSA": "RSA-HSM", "EC": "EC-HSM", "oct": "oct-HSM"}

Json = dict[str, Any]


def _new_version() -> str:
    return uuid.uuid4().hex


def _attributes(body: Body | None) -> dict[str, Any]:
    """enabled/nbf/exp/exportable from an 'attributes' object, typed."""
    if body is None:
        return {}
    out = {
        "enabled": body.bool("enabled"),
        "not_before": body.int("nbf"),
        "expires": body.int("exp"),
        "exportable": body.bool("exportable"),
    }
    return {k: v for k, v in out.items() if v is not None}


def _release_policy(body: Body | None) -> Json | None:
    """A release policy as stored and returned: contentType, data (base64url), immutable."""
    if body is None:
        return None
    data = body.b64("data", required=True)
    policy: Json = {"data": b64url_encode(data or b"")}
    content_type = body.str("contentType")
    if content_type is not None:
        policy["contentType"] = content_type
    immutable = body.bool("immutable")
    if immutable is not None:
        policy["immutable"] = immutable
    return policy


class VaultService:
    """The keys API of one vault (Key Vault Premium or Managed HSM) over one store."""

    def __init__(
        self, store: Store, flavour: Flavour, base_url: str, *, strict: bool = False
    ) -> None:
        self.store = store
        self.flavour = flavour
        self.base_url = base_url
        self.strict = strict  # no rehearsal allowance: refuse all that Azure refuses
        self._cache: OrderedDict[tuple[str, str], material.PrivateKey] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- helpers --------------------------------------------------------------------------------

    def _private(self, record: KeyRecord) -> material.PrivateKey:
        """The usable private key of a version, cached since parsing RSA keys is not free."""
        key = (record.name.lower(), record.version)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        secret = self.store.secret(record)
        if secret is None:
            raise not_found(f"Key {record.name} version {record.version} was just purged.")
        private = material.load(family_of(record.kty), secret)
        with self._cache_lock:
            self._cache[key] = private
            while len(self._cache) > 256:
                self._cache.popitem(last=False)
        return private

    def _live(self, name: str, version: str = "") -> KeyRecord:
        record = self.store.get(check_name(name), check_version(version))
        if record is None:
            what = f"version {version} of key {name}" if version else f"key {name}"
            raise not_found(f"A key with (name/id) {name} was not found in this key vault: {what}.")
        return record

    def _check_usable(self, record: KeyRecord, operation: str) -> None:
        if operation not in record.key_ops:
            raise forbidden(f"Operation {operation} is not permitted on this key.")
        now = int(time.time())
        if not record.enabled:
            raise forbidden(f"Operation {operation} is not allowed on a disabled key.")
        if record.not_before is not None and now < record.not_before:
            raise forbidden(f"Operation {operation} is not allowed before the key's nbf time.")
        if record.expires is not None and now >= record.expires:
            raise forbidden(f"Operation {operation} is not allowed on an expired key.")

    def _store_new(self, record: KeyRecord, secret: bytes) -> Json:
        stored = self.store.add_version(record, secret)
        if stored is None:
            raise conflict(
                f"Key {record.name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the key can only be recovered or purged."
            )
        return bundles.key_bundle(self.base_url, stored)

    def _export_terms(self, name: str, attributes: Json, policy: Json | None) -> None:
        """An exportable key needs a release policy on its first version, as Azure insists."""
        if not attributes.get("exportable") or policy is not None:
            return
        latest = self.store.get(name)
        if latest is None or latest.release_policy is None:
            raise bad_parameter("An exportable key needs a release_policy on its first version.")

    def _record(
        self,
        name: str,
        kty: str,
        key_ops: list[str],
        private: material.PrivateKey,
        attributes: Json,
        body: Body,
        policy: Json | None,
    ) -> KeyRecord:
        now = int(time.time())
        return KeyRecord(
            name=name,
            version=_new_version(),
            kty=kty,
            key_ops=key_ops,
            public=material.public_jwk(private),
            created=now,
            updated=now,
            tags=body.tags(),
            release_policy=policy,
            **attributes,
        )

    # -- create and import ----------------------------------------------------------------------

    def create(self, name: str, body: Body) -> Json:
        """POST /keys/{name}/create: a new key (or a new version) made inside the vault."""
        check_name(name)
        kty = body.str("kty", required=True) or ""
        family = self.flavour.check_kty(kty)
        size, curve = body.int("key_size"), body.str("crv")
        if family != "EC" and curve is not None:
            raise bad_parameter(f"A {kty} key takes 'key_size', not 'crv'.")
        attributes = _attributes(body.obj("attributes"))
        policy = _release_policy(body.obj("release_policy"))
        self._export_terms(name, attributes, policy)
        key_ops = resolve_key_ops(
            kty,
            family,
            body.str_list("key_ops"),
            exportable=bool(attributes.get("exportable")),
            creating=True,
        )
        body.tags()  # refuse bad tags before the slow part
        made = material.generate(family, size, curve, body.int("public_exponent"))
        record = self._record(name, kty, key_ops, made.private, attributes, body, policy)
        return self._store_new(record, made.secret)

    def import_key(self, name: str, body: Body) -> Json:
        """PUT /keys/{name}: a plain JWK, or a BYOK package in key.key_hsm unwrapped for real."""
        check_name(name)
        key = body.obj("key", required=True)
        assert key is not None
        kty = key.str("kty", required=True) or ""
        attributes = _attributes(body.obj("attributes"))
        policy = _release_policy(body.obj("release_policy"))
        requested_ops = key.str_list("key_ops")
        body.tags()  # refuse bad tags before the slow part
        key_hsm = key.b64("key_hsm")
        if key_hsm is not None:
            if not kty.endswith("-HSM"):
                raise bad_parameter("A BYOK import (key_hsm) needs kty RSA-HSM, EC-HSM or oct-HSM.")
            family = self.flavour.check_kty(kty)
            private = self._unwrap_byok(name, family, key, key_hsm)
        else:
            family = kty.removesuffix("-HSM")
            if family not in _HSM_KTY:
                raise bad_parameter(f"Key type {kty!r} cannot be imported.")
            if body.bool("Hsm") or kty.endswith("-HSM") or self.flavour.managed_hsm:
                kty = _HSM_KTY[family]
            self.flavour.check_kty(kty)
            private = material.from_plain_jwk(family, key.data)
        described = material.describe(private)
        if family == "RSA" and described.size not in RSA_SIZES:
            raise bad_parameter(
                f"An RSA key of {described.size} bits cannot be imported; use 2048, 3072 or 4096 "
                "bits (never under 2048)."
            )
        if family == "oct":
            check_size("oct", described.size or 0)
        self._export_terms(name, attributes, policy)
        key_ops = resolve_key_ops(
            kty,
            family,
            requested_ops,
            exportable=bool(attributes.get("exportable")),
            creating=False,
        )
        record = self._record(name, kty, key_ops, private, attributes, body, policy)
        return self._store_new(record, described.secret)

    def _kek(self, kid: str) -> KeyRecord:
        """The key exchange key a .byok names: a live RSA-HSM key of this vault, import-only."""
        parts = urlsplit(kid)
        ours = urlsplit(self.base_url)
        segments = parts.path.split("/")
        if (
            parts.scheme != "https"
            or parts.netloc.lower() != ours.netloc.lower()
            or len(segments) != 4
            or segments[:2] != ["", "keys"]
            or not segments[3]
        ):
            raise bad_parameter(
                f"The .byok KEK {kid!r} is not a versioned key identifier of this vault "
                f"({self.base_url}/keys/<name>/<version>)."
            )
        try:
            record = self._live(segments[2], segments[3])
        except ApiError as exc:
            raise bad_parameter(f"The .byok KEK {kid} was not found in this vault.") from exc
        if record.kty != "RSA-HSM" or record.key_ops != ["import"]:
            raise bad_parameter(
                f"The key {kid} is not a key exchange key: a KEK is RSA-HSM with key_ops exactly "
                f"['import'], this one is {record.kty} with {record.key_ops}."
            )
        self._check_usable(record, "import")
        return record

    def _unwrap_byok(
        self, name: str, family: str, key: Body, key_hsm: bytes
    ) -> material.PrivateKey:
        package = byok_import.read_package(key_hsm)
        kek = self._private(self._kek(package.kek_kid))
        assert isinstance(kek, rsa.RSAPrivateKey), "a KEK record is always RSA-HSM"
        payload = byok_import.unwrap(kek, package.ciphertext)
        private = byok_import.open_target(
            family, payload, f"BYOK import of {name}", strict=self.strict
        )
        described = material.describe(private)
        if family == "EC":
            curve = key.str("crv")
            if curve is None:
                raise bad_parameter("An EC-HSM BYOK import needs key.crv (the curve of the key).")
            if curve != described.curve:
                raise bad_parameter(
                    f"The request says curve {curve} but the package holds a {described.curve} key."
                )
        return private

    # -- read -----------------------------------------------------------------------------------

    def get(self, name: str, version: str = "") -> Json:
        return bundles.key_bundle(self.base_url, self._live(name, version))

    def _page(
        self, fetch: Callable[[int, int], list[Any]], path: str, skip: int, maxresults: int | None
    ) -> tuple[list[Any], str | None]:
        limit = MAX_PAGE if maxresults is None else maxresults
        if not 1 <= limit <= MAX_PAGE or skip < 0:
            raise bad_parameter(f"maxresults must be 1..{MAX_PAGE}; $skiptoken must be >= 0.")
        rows = fetch(skip, limit + 1)
        more = len(rows) > limit
        link = (
            f"{self.base_url}{path}?api-version=7.5&$skiptoken={skip + limit}&maxresults={limit}"
            if more
            else None
        )
        return rows[:limit], link

    def list_keys(self, skip: int, maxresults: int | None) -> Json:
        rows, link = self._page(self.store.list_latest, "/keys", skip, maxresults)
        items = [bundles.key_item(self.base_url, r, versioned=False) for r in rows]
        return bundles.page(items, link)

    def list_versions(self, name: str, skip: int, maxresults: int | None) -> Json:
        check_name(name)
        self._live(name)

        def fetch(offset: int, limit: int) -> list[KeyRecord]:
            return self.store.list_versions(name, offset, limit)

        rows, link = self._page(fetch, f"/keys/{name}/versions", skip, maxresults)
        return bundles.page(
            [bundles.key_item(self.base_url, r, versioned=True) for r in rows], link
        )

    # -- update ---------------------------------------------------------------------------------

    def update(self, name: str, version: str, body: Body) -> Json:
        """PATCH /keys/{name}/{version}: key_ops, attributes, tags, release policy."""
        record = self._live(name, version)
        requested_ops = body.str_list("key_ops")
        attributes = _attributes(body.obj("attributes"))
        tags = body.tags()
        policy = _release_policy(body.obj("release_policy"))
        if "exportable" in attributes and attributes["exportable"] != bool(record.exportable):
            raise bad_parameter("'exportable' is fixed when a key is created; it cannot change.")
        attributes.pop("exportable", None)

        def change(current: KeyRecord) -> KeyRecord:
            changes: Json = dict(attributes, updated=int(time.time()))
            if requested_ops is not None:
                if ("import" in current.key_ops) != ("import" in requested_ops):
                    raise bad_parameter(
                        "A key exchange key keeps key_ops exactly ['import'], and no other key can "
                        "gain 'import'."
                    )
                changes["key_ops"] = resolve_key_ops(
                    current.kty,
                    family_of(current.kty),
                    requested_ops,
                    exportable=bool(current.exportable),
                    creating="import" in requested_ops,
                )
            if tags is not None:
                changes["tags"] = tags
            if policy is not None:
                if current.release_policy and current.release_policy.get("immutable"):
                    raise bad_parameter("The key's release policy is immutable.")
                changes["release_policy"] = policy
            return current.with_changes(**changes)

        updated = self.store.update(record.name, record.version, change)
        if updated is None:
            raise not_found(f"A key with (name/id) {name} was not found in this key vault.")
        return bundles.key_bundle(self.base_url, updated)

    # -- soft delete ----------------------------------------------------------------------------

    def delete(self, name: str) -> Json:
        deleted = self.store.delete(check_name(name))
        if deleted is None:
            raise not_found(f"A key with (name/id) {name} was not found in this key vault.")
        return bundles.deleted_bundle(self.base_url, *deleted)

    def _deleted(self, name: str) -> Any:
        deleted = self.store.deleted(check_name(name))
        if deleted is None:
            raise not_found(f"A deleted key with (name/id) {name} was not found in this key vault.")
        return deleted

    def get_deleted(self, name: str) -> Json:
        return bundles.deleted_bundle(self.base_url, *self._deleted(name))

    def list_deleted(self, skip: int, maxresults: int | None) -> Json:
        rows, link = self._page(self.store.list_deleted, "/deletedkeys", skip, maxresults)
        return bundles.page([bundles.deleted_item(self.base_url, *row) for row in rows], link)

    def recover(self, name: str) -> Json:
        self._deleted(name)
        record = self.store.recover(name)
        if record is None:
            raise not_found(f"A deleted key with (name/id) {name} was not found in this key vault.")
        return bundles.key_bundle(self.base_url, record)

    def purge(self, name: str) -> None:
        if not self.store.purge(check_name(name)):
            raise not_found(f"A deleted key with (name/id) {name} was not found in this key vault.")
        with self._cache_lock:
            for key in [k for k in self._cache if k[0] == name.lower()]:
                del self._cache[key]

    # -- cryptography ---------------------------------------------------------------------------

    def operate(self, name: str, version: str, operation: str, body: Body) -> Json:
        """POST /keys/{name}/{version}/{sign|verify|encrypt|decrypt|wrapkey|unwrapkey}."""
        op = _OPERATIONS.get(operation.lower())
        if op is None:
            raise not_found(f"The operation {operation!r} does not exist.")
        record = self._live(name, version)
        alg = body.str("alg", required=True) or ""
        self._check_usable(record, op)
        key = self._private(record)
        kid = bundles.kid(self.base_url, record.name, record.version)
        if op == "verify":
            digest = body.b64("digest", required=True) or b""
            signature = body.b64("value", required=True) or b""
            return {"value": ops.verify(alg, key, digest, signature)}
        value = body.b64("value", required=True) or b""
        if op == "sign":
            return {"kid": kid, "value": b64url_encode(ops.sign(alg, key, value))}
        if op == "wrapKey":
            return {"kid": kid, "value": b64url_encode(ops.wrap(alg, key, value))}
        if op == "unwrapKey":
            return {"kid": kid, "value": b64url_encode(ops.unwrap(alg, key, value))}
        iv, aad = body.b64("iv"), body.b64("aad")
        if op == "encrypt":
            result = ops.encrypt(alg, key, value, iv, aad)
        else:
            result = ops.decrypt(alg, key, value, iv, body.b64("tag"), aad)
        out: Json = {"kid": kid, "value": b64url_encode(result.value)}
        for field, data in (("iv", result.iv), ("tag", result.tag), ("aad", result.aad)):
            if data is not None:
                out[field] = b64url_encode(data)
        return out

    def random_bytes(self, body: Body) -> Json:
        """POST /rng: random bytes from the vault (1..128)."""
        count = body.int("count")
        if count is None or not 1 <= count <= 128:
            raise bad_parameter("The field 'count' must be an integer from 1 to 128.")
        return {"value": b64url_encode(os.urandom(count))}
