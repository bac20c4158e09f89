"""The document watched through the Kubernetes API, with the standard library only.

A mounted ConfigMap reaches the pod only at the kubelet's next sync (a minute or more), and not
at all through a ``subPath`` mount; a watch sees each publication within a round trip. The
client is deliberately small: one GET of the object, then a watch on it from that object's
resourceVersion, reconnecting with capped backoff and reading the object again after any
failure; after a 410 Gone it watches from now, which starts with the object as it is. It needs
``get`` and ``watch`` on that one ConfigMap.
"""

import base64
import contextlib
import http.client
import json
import os
import random
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from tollgate.sdk.sources import Source

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class _GoneError(Exception):
    """The resourceVersion to watch from is too old: read the object again."""


class _ApiError(Exception):
    """The API server answered, but not with what was asked for."""


def in_cluster_server() -> str | None:
    """The API server's address as the kubelet tells pods, or None outside a cluster."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _status_message(status: int, body: bytes) -> str:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    text = (
        message
        or body[:200].decode(errors="replace").strip()
        or http.client.responses.get(status, "")
    )
    return f"the API server answered {status}: {text}"


class ConfigMapSource(Source):
    """One key of one ConfigMap, watched through the API server.

    Outside a cluster give ``server`` (and ``token``/``ca_file`` as needed); inside, the
    defaults come from the pod's environment and service account, and the token file is read
    again on each connection since the kubelet rotates it. The constructor waits up to
    ``startup_timeout`` seconds for the first read, so the first request usually finds the
    document; it never raises for an unreachable or missing ConfigMap.
    """

    def __init__(
        self,
        namespace: str,
        name: str,
        key: str = "prompts.json",
        server: str | None = None,
        token: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        *,
        prompt: str | None = None,
        startup_timeout: float = 5.0,
        watch_timeout: int = 300,
        request_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        super().__init__(prompt)
        self.namespace = namespace
        self.name = name
        self.key = key
        self.description = f"configmap {namespace}/{name} key {key}"
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self.backoff_initial = backoff_initial
        self.backoff_cap = backoff_cap
        self.server = server or in_cluster_server()
        self._token = token
        self._token_file = SERVICE_ACCOUNT / "token"
        self._stop = threading.Event()
        self._started = threading.Event()
        self._delay = backoff_initial
        self._active: http.client.HTTPConnection | None = None
        self._active_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ssl: ssl.SSLContext | None = None
        self._host, self._port, self._prefix, self._https = "", 0, "", False
        self._setup_error = self._configure(ca_file)
        if self._setup_error is not None:
            self._fail(self._setup_error)
            return
        self._thread = threading.Thread(
            target=self._run, name=f"tollgate-sdk {self.description}", daemon=True
        )
        self._thread.start()
        self._started.wait(startup_timeout)

    def _configure(self, ca_file: str | os.PathLike[str] | None) -> str | None:
        """Set up the connection parameters; returns what makes it impossible, if anything."""
        if self.server is None:
            return (
                "no API server: KUBERNETES_SERVICE_HOST is unset (not in a cluster) and no "
                "server was given"
            )
        url = urlsplit(self.server)
        if url.scheme not in ("http", "https") or not url.hostname:
            return f"the server {self.server!r} is not an http(s) URL"
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        if self._https:
            cafile = ca_file
            if cafile is None and (SERVICE_ACCOUNT / "ca.crt").exists():
                cafile = SERVICE_ACCOUNT / "ca.crt"
            try:
                self._ssl = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                return f"cannot load the CA file {cafile}: {exc}"
        return None

    # -- reading --------------------------------------------------------------------------------

    def refresh(self) -> bool:
        if self._setup_error is not None:
            self._fail(self._setup_error)
            return False
        try:
            _, changed = self._get()
        except Exception as exc:
            self._fail(self._explain(exc))
            return False
        return changed

    def close(self) -> None:
        self._stop.set()
        with self._active_lock:
            conn = self._active
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.request_timeout)

    @property
    def _object_path(self) -> str:
        ns, name = quote(self.namespace, safe=""), quote(self.name, safe="")
        return f"{self._prefix}/api/v1/namespaces/{ns}/configmaps/{name}"

    def _watch_path(self, resource_version: str) -> str:
        query = {
            "watch": "true",
            "fieldSelector": f"metadata.name={self.name}",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        ns = quote(self.namespace, safe="")
        return f"{self._prefix}/api/v1/namespaces/{ns}/configmaps?{urlencode(query)}"

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "tollgate-sdk"}
        token = self._token
        if token is None and self._token_file.exists():
            token = self._token_file.read_text().strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _get(self) -> tuple[str, bool]:
        """Read the object; returns the resourceVersion to watch from and whether it changed
        the document. A missing ConfigMap is an error, watched from now on for its creation."""
        conn = self._connection(self.request_timeout)
        try:
            conn.request("GET", self._object_path, headers=self._headers())
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status == 404:
            self._fail(f"the configmap {self.namespace}/{self.name} does not exist")
            return "", False
        if response.status != 200:
            raise _ApiError(_status_message(response.status, body))
        obj = json.loads(body)
        changed = self._take_object(obj)
        return str((obj.get("metadata") or {}).get("resourceVersion") or ""), changed

    def _take_object(self, obj: dict[str, Any]) -> bool:
        data = obj.get("data") or {}
        binary = obj.get("binaryData") or {}
        if isinstance(data.get(self.key), str):
            return self._take(data[self.key])
        if isinstance(binary.get(self.key), str):
            try:
                return self._take(base64.b64decode(binary[self.key], validate=True))
            except ValueError:
                self._fail(f"binaryData key {self.key!r} is not base64")
                return False
        self._fail(f"the configmap {self.namespace}/{self.name} has no key {self.key!r}")
        return False

    def _watch(self, resource_version: str) -> str:
        """Follow the watch stream until it ends; returns the last resourceVersion seen."""
        conn = self._connection(self.request_timeout)
        with self._active_lock:
            if self._stop.is_set():
                return resource_version
            self._active = conn
        try:
            conn.request("GET", self._watch_path(resource_version), headers=self._headers())
            response = conn.getresponse()
            if response.status == 410:
                raise _GoneError()
            if response.status != 200:
                raise _ApiError(_status_message(response.status, response.read()))
            self._delay = self.backoff_initial
            if conn.sock is not None:  # the answer came in time; the stream may idle longer
                conn.sock.settimeout(self.watch_timeout + self.request_timeout)
            while not self._stop.is_set():
                line = response.readline()
                if not line:
                    break
                if line.strip():
                    resource_version = self._event(json.loads(line), resource_version)
        finally:
            with self._active_lock:
                self._active = None
            conn.close()
        return resource_version

    def _event(self, event: dict[str, Any], resource_version: str) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _GoneError()
            raise _ApiError(f"the watch failed: {obj.get('message') or obj}")
        if kind in ("ADDED", "MODIFIED"):
            self._take_object(obj)
        elif kind == "DELETED":
            self._fail(f"the configmap {self.namespace}/{self.name} was deleted")
        return str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)

    # -- the watch thread -----------------------------------------------------------------------

    def _run(self) -> None:
        resource_version: str | None = None
        gone = 0
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version, _ = self._get()
                    self._started.set()
                began = time.monotonic()
                resource_version = self._watch(resource_version)
                gone = 0
                if time.monotonic() - began < 1.0:
                    self._pause()  # a stream that keeps ending at once must not spin
            except _GoneError:
                # The version is older than the server's watch history, as an object's own
                # version is when it has not changed for a while: watch from now, which starts
                # with the object as it is (an ADDED event).
                resource_version = ""
                gone += 1
                if gone > 1:
                    self._pause()
            except Exception as exc:
                resource_version = None
                if self._stop.is_set():
                    break
                self._fail(self._explain(exc))
                self._started.set()
                self._pause()

    def _pause(self) -> None:
        self._stop.wait(self._delay * random.uniform(0.8, 1.2))
        self._delay = min(self._delay * 2, self.backoff_cap)

    def _explain(self, exc: Exception) -> str:
        if isinstance(exc, _ApiError):
            return str(exc)
        if isinstance(exc, ValueError):
            return f"unreadable answer from the API server: {exc}"
        return f"cannot reach the API server {self.server}: {type(exc).__name__}: {exc}"
