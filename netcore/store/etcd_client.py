"""A small synchronous client of etcd's v3 JSON gateway (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`).

Synchronous on purpose: the registry commits from the engine's worker thread, and the watch and
the lease keep-alive run on threads of their own. No dependency beyond the standard library;
keys and values travel base64-encoded, as the gateway wants. Every request has a deadline, so
an unreachable cluster fails fast with `EtcdUnavailable` instead of hanging a caller.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError

CONNECT_TIMEOUT_S = 2.0  # reaching one member; the next member is tried after it
REPLY_TIMEOUT_S = 7.0  # a member that took the request: etcd gives up on its own after 5 s


class EtcdUnavailable(StoreError):
    """No etcd member answered: the write was not applied."""


@dataclass(frozen=True, slots=True)
class EtcdOptions:
    """How to reach the cluster: `host:port` endpoints, TLS files, user and password."""

    endpoints: tuple[str, ...]
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = None
    timeout_s: float = CONNECT_TIMEOUT_S
    reply_timeout_s: float = REPLY_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    kv: KeyValue


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with `prefix` (etcd's convention)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


def _kv(d: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(d["key"]).decode(),
        value=base64.b64decode(d.get("value", "")),
        create_revision=int(d.get("create_revision", 0)),
        mod_revision=int(d.get("mod_revision", 0)),
        lease=int(d.get("lease", 0)),
    )


class EtcdClient:
    """Thread-safe: each request opens (and closes) its own connection."""

    def __init__(self, options: EtcdOptions) -> None:
        self.options = options
        self._ssl = self._ssl_context(options)
        self._token: str | None = None
        self._preferred = 0  # the member that answered last
        self._lock = threading.Lock()

    @staticmethod
    def _ssl_context(options: EtcdOptions) -> ssl.SSLContext | None:
        if not (options.cacert or options.cert):
            return None
        try:
            context = ssl.create_default_context(cafile=options.cacert)
            if options.cert:
                context.load_cert_chain(options.cert, options.key)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            files = f"--etcd-cacert {options.cacert}, --etcd-cert {options.cert}, "
            raise StoreError(
                f"cannot load the etcd TLS files ({files}--etcd-key {options.key}): {exc}"
            ) from exc
        return context

    # --- transport ---

    def _connection(self, endpoint: str, timeout: float | None) -> http.client.HTTPConnection:
        host, _, port = endpoint.rpartition(":")
        host = host.strip("[]")
        if self._ssl is not None:
            return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def _ordered(self) -> list[str]:
        eps = list(self.options.endpoints)
        return eps[self._preferred :] + eps[: self._preferred]

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to `path` on the first member that answers."""
        errors = []
        tls_failed = 0
        for endpoint in self._ordered():
            try:
                reply = self._post(endpoint, path, body)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{endpoint}: {exc or type(exc).__name__}")
                tls_failed += isinstance(exc, ssl.SSLError)
                # A TLS etcd hangs up on plain HTTP: a close, or a reset when our request
                # was still unread (timing decides which).
                hung_up = (http.client.RemoteDisconnected, ConnectionResetError)
                if isinstance(exc, hung_up) and self._ssl is None:
                    errors[-1] += " (etcd serves TLS? give --etcd-cacert)"
                continue
            self._preferred = self.options.endpoints.index(endpoint)
            return reply
        if tls_failed == len(errors):
            raise EtcdUnavailable(
                f"TLS with etcd failed ({'; '.join(errors)}): the change was not applied; "
                "check --etcd-cacert (the CA that signed etcd's certificate), --etcd-cert and "
                "--etcd-key (a client certificate etcd trusts)"
            )
        raise EtcdUnavailable(
            f"etcd is unreachable ({'; '.join(errors)}): the change was not applied; "
            "start etcd or check --store and the etcd TLS/user options"
        )

    def _post(
        self, endpoint: str, path: str, body: dict[str, Any], *, again: bool = True
    ) -> dict[str, Any]:
        conn = self._connection(endpoint, self.options.timeout_s)
        try:
            conn.connect()
            # A loaded member (a slow fsync) answers late, not never: a write it took must not
            # be reported as lost after the connect timeout.
            conn.sock.settimeout(self.options.reply_timeout_s)
            conn.request("POST", path, json.dumps(body), self._headers(endpoint))
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        data = json.loads(raw or b"{}")
        if resp.status != 200:
            message = data.get("message") or data.get("error") or raw.decode(errors="replace")
            if resp.status >= 500 or "no leader" in str(message):
                raise http.client.HTTPException(f"HTTP {resp.status}: {message}")
            if "invalid auth token" in str(message) and self.options.user and again:
                self._token = None  # expired (etcd's simple tokens live 5 minutes): log in again
                return self._post(endpoint, path, body, again=False)
            raise StoreError(f"etcd refused {path}: {message}{_hint(str(message))}")
        return data

    def _headers(self, endpoint: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.options.user:
            with self._lock:
                if self._token is None:
                    self._token = self._authenticate(endpoint)
                headers["Authorization"] = self._token
        return headers

    def _authenticate(self, endpoint: str) -> str:
        conn = self._connection(endpoint, self.options.timeout_s)
        try:
            body = {"name": self.options.user, "password": self.options.password or ""}
            conn.request("POST", "/v3/auth/authenticate", json.dumps(body))
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        if resp.status != 200 or "token" not in data:
            raise StoreError(
                f"etcd refused user {self.options.user}: {data.get('message', '')}: check "
                "--etcd-user and --etcd-password (or DNSD_ETCD_PASSWORD)"
            )
        return str(data["token"])

    # --- KV ---

    def range(self, key: str, range_end: str | None = None) -> tuple[list[KeyValue], int]:
        """The keys in [key, range_end) (or `key` alone) and the cluster's revision."""
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        data = self.call("/v3/kv/range", body)
        return [_kv(d) for d in data.get("kvs", [])], int(data["header"]["revision"])

    def txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], failure=()
    ) -> tuple[bool, list[dict[str, Any]], int]:
        """(succeeded, responses, revision) of one transaction."""
        data = self.call(
            "/v3/kv/txn", {"compare": compare, "success": success, "failure": list(failure)}
        )
        return (
            bool(data.get("succeeded")),
            data.get("responses", []),
            int(data["header"]["revision"]),
        )

    # --- leases ---

    def lease_grant(self, ttl: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """The lease's renewed TTL; 0 when it has expired (the keys on it are gone)."""
        return int(self.call("/v3/lease/keepalive", {"ID": lease})["result"].get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": lease})

    # --- watch ---

    def watch(
        self, key: str, range_end: str, start_revision: int, opened: Callable[[socket.socket], None]
    ) -> Iterator[tuple[int, list[WatchEvent]]]:
        """(revision, events) batches from `start_revision` on, until the stream breaks or goes
        silent (raises EtcdUnavailable; `opened` gets the socket, whose shutdown ends the
        stream). Raises `Compacted` when the revision is gone. See etcd_watch.py."""
        from .etcd_watch import WatchStream

        endpoint = self._ordered()[0]
        body = {
            "create_request": {
                "key": b64(key),
                "range_end": b64(range_end),
                "start_revision": start_revision,
                "progress_notify": True,
            }
        }
        stream = None
        try:
            stream = WatchStream.open(
                endpoint,
                body,
                self._headers(endpoint),
                timeout=self.options.timeout_s,
                tls=self._ssl,
                opened=opened,
            )
            for result in stream.messages():
                yield self._batch(result)
        except (OSError, ValueError) as exc:
            self._preferred = (self._preferred + 1) % len(self.options.endpoints)
            if "auth token" in str(exc):
                self._token = None  # expired: the next attempt logs in again
            raise EtcdUnavailable(f"etcd watch on {endpoint}: {exc}") from exc
        finally:
            if stream is not None:
                stream.close()

    @staticmethod
    def _batch(result: dict[str, Any]) -> tuple[int, list[WatchEvent]]:
        """(the revision up to which every event has now been delivered, the events).

        A reply to the create request tells the current revision, not what was sent: 0. A
        batch of events is complete up to its last event; a progress reply up to its header.
        """
        if "header" not in result:
            raise OSError(f"watch error: {str(result)[:200]}")
        if int(result.get("compact_revision", 0)):
            raise Compacted(int(result["compact_revision"]))
        if result.get("canceled"):
            raise OSError(f"watch canceled: {result.get('cancel_reason', '')}")
        events = [WatchEvent(e.get("type", "PUT"), _kv(e["kv"])) for e in result.get("events", [])]
        if events:
            return max(e.kv.mod_revision for e in events), events
        if result.get("created"):
            return 0, events
        return int(result["header"]["revision"]), events


def _hint(message: str) -> str:
    """What to do about an error etcd returned for a request, when the options are the cause."""
    if "user name is empty" in message or "permission denied" in message:
        return (
            ": etcd requires a user allowed to use the prefix: give --etcd-user and --etcd-password"
        )
    return ""


class Compacted(Exception):
    """The watch's start revision was compacted away: reload and watch from the present."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"etcd compacted up to revision {revision}")
        self.revision = revision


def put_op(key: str, value: bytes | str, lease: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = lease
    return {"requestPut": body}


def delete_op(key: str, *, prefix: bool = False) -> dict[str, Any]:
    body = {"key": b64(key)}
    if prefix:
        body["range_end"] = b64(prefix_end(key))
    return {"requestDeleteRange": body}


def range_op(key: str) -> dict[str, Any]:
    return {"requestRange": {"key": b64(key)}}


def absent(key: str) -> dict[str, Any]:
    """Compare: the key does not exist."""
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": 0}


def present(key: str) -> dict[str, Any]:
    """Compare: the key exists."""
    return {"key": b64(key), "target": "CREATE", "result": "GREATER", "create_revision": 0}


def unchanged_since(prefix: str, revision: int) -> dict[str, Any]:
    """Compare: no key under `prefix` was written after `revision`."""
    return {
        "key": b64(prefix),
        "range_end": b64(prefix_end(prefix)),
        "target": "MOD",
        "result": "LESS",
        "mod_revision": revision + 1,
    }


def value_is(key: str, value: str) -> dict[str, Any]:
    return {"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)}


def range_kvs(response: dict[str, Any]) -> list[KeyValue]:
    """The key-values of a range response inside a transaction's responses."""
    return [_kv(d) for d in response.get("response_range", {}).get("kvs", [])]
