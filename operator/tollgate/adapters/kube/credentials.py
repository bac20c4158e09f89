"""One source of credentials for kopf and for Tollgate's own API client, refreshed.

Before, Tollgate loaded its credentials once at start-up, by hand: after an exec-plugin token
expired (EKS, GKE: 15 to 60 minutes) or the projected service-account token was rotated, every
request of Tollgate's was a 401 while kopf's own client logged in again, so the operator looked
alive and did nothing. It also tried the kubeconfig before in-cluster (kopf does the opposite,
so the two could talk to different clusters), dropped client certificates with
``insecure-skip-tls-verify`` and ignored ``tls-server-name``.

Now both use kopf's own login (``kopf.login_via_client``: in-cluster first, then the kubeconfig,
exec plugins and token files included), through one :class:`Credentials`: kopf's login handler
asks it, and Tollgate's client asks it for every request. A login is renewed every
``REFRESH_SECONDS`` (kopf honours the same expiration) and at once on a 401, one login at a time
however many requests saw the 401. docs/decisions.md (39) records why this and not a client.
"""

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import kopf

REFRESH_SECONDS = 600.0


@dataclasses.dataclass(frozen=True)
class Login:
    """What one login gave: kopf's ConnectionInfo, and the TLS server name kopf has no field for."""

    info: kopf.ConnectionInfo
    tls_server_name: str | None = None
    number: int = 0  # counts logins, so a refresh after a 401 happens once per stale login


def login_like_kopf() -> Login:
    """Log in as kopf does (a blocking call: exec plugins run here; use a thread)."""
    import logging

    info = kopf.login_via_client(
        logger=logging.getLogger("tollgate.login"), settings=kopf.OperatorSettings()
    )
    if info is None:
        raise kopf.LoginError("the kubernetes client library is not installed")
    server_name: str | None = None
    try:
        from kubernetes import client

        server_name = getattr(client.Configuration.get_default_copy(), "tls_server_name", None)
    except ImportError:  # pragma: no cover - kopf needed it a line above
        pass
    expires = datetime.now(UTC) + timedelta(seconds=REFRESH_SECONDS)
    return Login(dataclasses.replace(info, expiration=expires), server_name or None)


class Credentials:
    """The current login, renewed when it ages out or the API server says 401."""

    def __init__(
        self,
        login: Callable[[], Login] = login_like_kopf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._login = login
        self._clock = clock
        self._current: Login | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()
        self.logins = 0

    async def current(self) -> Login:
        """The login to use now (a new one when there is none or it aged out)."""
        if self._current is None or self._clock() - self._at >= REFRESH_SECONDS:
            async with self._lock:
                if self._current is None or self._clock() - self._at >= REFRESH_SECONDS:
                    await self._renew()
        assert self._current is not None
        return self._current

    async def refresh(self, stale: Login | None = None) -> Login:
        """A new login, unless one newer than ``stale`` was made meanwhile."""
        async with self._lock:
            if self._current is None or stale is None or self._current.number == stale.number:
                await self._renew()
        assert self._current is not None
        return self._current

    async def _renew(self) -> None:
        self.logins += 1
        fresh = await asyncio.to_thread(self._login)
        self._current = dataclasses.replace(fresh, number=self.logins)
        self._at = self._clock()


class CredentialsAuth(httpx.Auth):
    """Signs each request with the current login; on a 401, logs in again and retries once."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("the Kubernetes client is async only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        login = await self.credentials.current()
        _sign(request, login)
        response = yield request
        if response.status_code == 401:
            await response.aread()
            login = await self.credentials.refresh(login)
            _sign(request, login)
            yield request


def _sign(request: httpx.Request, login: Login) -> None:
    info = login.info
    if info.token:
        request.headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
    elif info.username and info.password:
        pair = base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
        request.headers["Authorization"] = f"Basic {pair}"
    else:
        request.headers.pop("Authorization", None)
    if login.tls_server_name:  # the name the server's certificate is for (kubeconfig)
        request.extensions = {**request.extensions, "sni_hostname": login.tls_server_name}


def client_options(login: Login) -> dict[str, Any]:
    """httpx options for a login's server: TLS trust, client certificate, server name."""
    import ssl
    import tempfile

    info = login.info
    context = ssl.create_default_context()
    if info.insecure:  # trust nothing about the server, but still present our certificate
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif info.ca_path:
        context.load_verify_locations(cafile=str(info.ca_path))
    elif info.ca_data:
        data = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
        context.load_verify_locations(cadata=data)
    certificate = _material(info.certificate_path, info.certificate_data, tempfile)
    key = _material(info.private_key_path, info.private_key_data, tempfile)
    if certificate:
        context.load_cert_chain(certificate, key)
    return {"base_url": info.server, "verify": context}


def _material(path: Any, data: str | bytes | None, tempfile: Any) -> str | None:
    if path:
        return str(path)
    if not data:
        return None
    handle = tempfile.NamedTemporaryFile("wb", delete=False, prefix="tollgate-", suffix=".pem")
    with handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return str(handle.name)
