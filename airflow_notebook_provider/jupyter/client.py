"""The Airflow api-server as this Jupyter server sees it: ``/auth/token`` (a JWT, cached, renewed on a 401) and the
public REST API ``/api/v2``, with the configured user's rights, so Airflow's access rules apply to everything the
panel shows. Every failure is an ``AirflowUnavailable`` whose message says what failed and ``fix`` what to set.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import quote

import httpx

from airflow_notebook_provider.jupyter.config import ENV_PASSWORD, ENV_TOKEN, ENV_URL, ENV_USERNAME, AirflowNotebook

SET_URL = f"Set {ENV_URL} (or c.AirflowNotebook.api_url) to the Airflow api-server's URL, e.g. http://airflow:8080"
SET_LOGIN = (f"Set {ENV_USERNAME} and {ENV_PASSWORD} (c.AirflowNotebook.username / password) to an Airflow user's "
             f"login, or {ENV_TOKEN} (c.AirflowNotebook.token) to an API token, then restart JupyterLab")


class AirflowUnavailable(Exception):
    """Airflow could not be asked: ``status`` is the HTTP status to answer the browser with."""

    def __init__(self, message: str, fix: str, status: int = 502) -> None:
        super().__init__(message)
        self.message, self.fix, self.status = message, fix, status


class AirflowRefused(Exception):
    """Airflow answered a request with an error (``status``, Airflow's ``detail``): passed on to the browser."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"Airflow answered {status}: {detail}")
        self.status, self.detail = status, detail


def q(value: Any) -> str:
    """One path segment of an API URL (a run id holds ``:`` and ``+``)."""
    return quote(str(value), safe="")


class AirflowClient:
    """One per Jupyter server: an httpx client and the JWT of the configured user."""

    def __init__(self, settings: AirflowNotebook) -> None:
        self.settings = settings
        self.url = settings.api_url.rstrip("/")
        self._jwt: str | None = settings.token or None
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=settings.timeout, follow_redirects=False)

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def user(self) -> str | None:
        """The configured user, or the ``sub`` of the configured token (read for display only, not verified)."""
        if self.settings.username:
            return str(self.settings.username)
        try:
            payload = str(self.settings.token).split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return str(claims.get("sub")) if isinstance(claims, dict) and claims.get("sub") else None
        except (IndexError, ValueError):
            return None

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if not self.url:
            raise AirflowUnavailable(f"No Airflow api-server is configured ({ENV_URL} is not set).", SET_URL, 503)
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise AirflowUnavailable(f"The Airflow api-server at {self.url} did not answer within "
                                     f"{self.settings.timeout:.0f} s.", f"Check that it runs; {SET_URL}", 504) from None
        except httpx.HTTPError as exc:
            raise AirflowUnavailable(f"Cannot reach the Airflow api-server at {self.url}: {exc}.",
                                     f"Check the URL and that the api-server runs; {SET_URL}") from None

    async def _login(self) -> str:
        """A fresh JWT from ``/auth/token`` (the simple and FAB auth managers' route)."""
        if not (self.settings.username and self.settings.password):
            raise AirflowUnavailable("No Airflow credentials are configured.", SET_LOGIN, 503)
        resp = await self._send("POST", f"{self.url}/auth/token",
                                json={"username": self.settings.username, "password": self.settings.password})
        if resp.status_code in (401, 403):
            raise AirflowUnavailable(f"Airflow at {self.url} refused the login of user {self.settings.username!r} "
                                     f"(HTTP {resp.status_code}: wrong user name or password).", SET_LOGIN)
        if resp.status_code == 404:
            raise AirflowUnavailable(f"{self.url} has no /auth/token: it is not an Airflow 3 api-server (or its auth "
                                     "manager issues no tokens for a password).", f"{SET_URL}; or set {ENV_TOKEN}")
        token = _json(resp).get("access_token") if resp.status_code < 300 else None
        if not isinstance(token, str):
            raise AirflowUnavailable(f"{self.url}/auth/token answered HTTP {resp.status_code} without a token: "
                                     f"{resp.text[:200]}", f"{SET_URL}; check the api-server's log")
        return token

    async def _token(self) -> str:
        async with self._lock:
            if self._jwt is None:
                self._jwt = await self._login()
            return self._jwt

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``path`` (``/api/v2/...`` or a viewer route) with the user's JWT; on a 401, logs in again once."""
        jwt = await self._token()
        resp = await self._send(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {jwt}"}, **kwargs)
        if resp.status_code != 401:
            return resp
        if self.settings.token:  # a configured token is not renewed here
            raise AirflowUnavailable(f"Airflow at {self.url} refused the configured API token (expired, or another "
                                     "deployment's).", f"Set {ENV_TOKEN} to a fresh token, or use {ENV_USERNAME} and "
                                     f"{ENV_PASSWORD} instead, then restart JupyterLab")
        async with self._lock:
            if self._jwt == jwt:  # expired: the next caller logs in again
                self._jwt = None
        jwt = await self._token()
        resp = await self._send(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {jwt}"}, **kwargs)
        if resp.status_code == 401:
            raise AirflowUnavailable(f"Airflow at {self.url} refused a fresh token of user {self.user!r} (HTTP 401).",
                                     SET_LOGIN)
        return resp

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of an API call; an Airflow error (4xx/5xx) is an ``AirflowRefused`` with its ``detail``."""
        resp = await self.request(method, path, **kwargs)
        if resp.status_code >= 400:
            body = _json(resp)
            raise AirflowRefused(resp.status_code, body.get("detail", resp.text[:500]) if body else resp.text[:500])
        if resp.status_code == 204:
            return None
        try:
            return resp.json()
        except ValueError:
            raise AirflowUnavailable(f"{self.url}{path} did not answer JSON (HTTP {resp.status_code}).", SET_URL) from None

    async def version(self) -> str | None:
        """The api-server's Airflow version (``/api/v2/version``, which needs no login); None if it is not one."""
        resp = await self._send("GET", f"{self.url}/api/v2/version")
        if resp.status_code != 200 or not isinstance(_json(resp).get("version"), str):
            raise AirflowUnavailable(f"{self.url}/api/v2/version answered HTTP {resp.status_code}: this is not an "
                                     "Airflow 3 api-server.", SET_URL)
        return str(_json(resp)["version"])


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
