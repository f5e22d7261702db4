"""A small client of a running simulator (``/v1`` and ``/sim``), on requests only.

``trigger`` and ``demo`` use it, so they need neither the stripe package nor a real account.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from simulator.errors import RemoteError, Unreachable
from simulator.forms import encode

DEFAULT_API_KEY = "sk_test_crossfill"  #: any sk_test_ key works against the simulator
TIMEOUT_S = 30.0  #: one call to the simulator, seconds


class SimClient:
    """Calls one simulator at *base_url* (``http://127.0.0.1:12111``), for the platform or, with
    *account*, for a connected account (a ``Stripe-Account`` header on every call)."""

    def __init__(self, base_url: str, api_key: str = DEFAULT_API_KEY, *, timeout_s: float = TIMEOUT_S,
                 account: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.account = account
        self._http = requests.Session()

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET *path* with bracket-encoded *params*."""
        return self.request("GET", path, params)

    def post(self, path: str, params: Mapping[str, Any] | None = None, *,
             idempotency_key: str | None = None) -> dict[str, Any]:
        """POST *path* with a form-encoded body."""
        return self.request("POST", path, params, idempotency_key=idempotency_key)

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """DELETE *path*."""
        return self.request("DELETE", path, params)

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None, *,
                idempotency_key: str | None = None) -> dict[str, Any]:
        """One call; returns the JSON answer.

        Raises:
            RemoteError: for any non-2xx answer, with its status and body.
            Unreachable: when nothing listens at the base URL.
        """
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if self.account:
            headers["Stripe-Account"] = self.account
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        encoded = encode(params or {})
        url = self.base_url + path
        try:
            if method == "POST":
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                response = self._http.post(url, data=encoded, headers=headers, timeout=self.timeout_s)
            else:
                response = self._http.request(method, url + (f"?{encoded}" if encoded else ""), headers=headers,
                                              timeout=self.timeout_s)
        except requests.ConnectionError as error:
            raise Unreachable(f"no simulator answers at {self.base_url}; start one with `crossfill sim` "
                              f"({error.__class__.__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if not 200 <= response.status_code < 300:
            raise RemoteError(method, path, response.status_code, body)
        answer: dict[str, Any] = body
        return answer
