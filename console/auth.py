"""Who is asking, and may they: bearer tokens, the signed session, roles, CSRF and sign-in throttling.

Tokens are compared in constant time, each against every configured token, so neither the match
nor its position shows in the time taken. A browser signs in once with its token and then carries
a signed session cookie that names the token's holder and a keyed fingerprint of the token (a token
removed from the configuration ends its sessions).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from console.settings import PLATFORM, ConsoleToken
from fulfillment.store import KEY_PREFIX, reachable

#: What each role may do.
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset({"viewer", "operator"}),  #: status, orders, dead letters, events, report, audit
    "operate": frozenset({"operator"}),  #: replay, reconcile
    "order": frozenset({"viewer", "operator", "merchant"}),  #: read one order (the order API)
    "fulfil": frozenset({"operator", "merchant"}),  #: ask for an order's fulfilment (the order API)
}

THROTTLE_FREE_FAILURES = 3  #: failed sign-ins per client before each further one waits
THROTTLE_MAX_WAIT_S = 300  #: longest wait imposed after failed sign-ins, seconds
THROTTLE_WINDOW_S = 3600  #: failures are forgotten this long after the last one, seconds


@dataclass(frozen=True)
class AccountScope:
    """The accounts whose orders a caller may see: every one (:data:`ALL`), or a merchant's own.

    An order's account is its connected account (``acct_…``), or :data:`~console.settings.PLATFORM`
    for the platform's own orders (made without ``Stripe-Account``).
    """

    accounts: frozenset[str] | None = None  #: None: every account

    @property
    def is_all(self) -> bool:
        return self.accounts is None

    def holds(self, account: str | None) -> bool:
        """Whether an order of *account* (None or "": the platform's own) is in this scope."""
        return self.accounts is None or (account or PLATFORM) in self.accounts

    def readable_as(self) -> tuple[str | None, ...]:
        """The accounts a session may be read as for this scope, platform (None) first; empty for ALL."""
        if self.accounts is None:
            return ()
        return tuple(None if account == PLATFORM else account
                     for account in sorted(self.accounts, key=lambda a: (a != PLATFORM, a)))


ALL = AccountScope()  #: viewers and operators see every account


@dataclass(frozen=True)
class Principal:
    """The holder of a token: their name, role and the accounts they may see."""

    name: str
    role: str
    scope: AccountScope = ALL

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


def principal_of(token: ConsoleToken) -> Principal:
    return Principal(token.name, token.role, AccountScope(token.accounts))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class TokenTable:
    """The configured tokens, looked up in constant time."""

    def __init__(self, tokens: Sequence[ConsoleToken], secret_key: str) -> None:
        self._tokens = tuple(tokens)
        self._digests = tuple(_digest(token.token) for token in self._tokens)
        self._key = secret_key.encode()

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def authenticate(self, presented: str) -> Principal | None:
        """The holder of *presented*, or None; every configured token is compared, whatever matches."""
        wanted = _digest(presented)
        found: ConsoleToken | None = None
        for token, digest in zip(self._tokens, self._digests, strict=True):
            if hmac.compare_digest(wanted, digest):
                found = token
        return principal_of(found) if found else None

    def fingerprint(self, name: str) -> str:
        """A keyed fingerprint of *name*'s token, kept in their session (never the token)."""
        for token in self._tokens:
            if token.name == name:
                return hmac.new(self._key, token.token.encode(), hashlib.sha256).hexdigest()[:32]
        return ""

    def from_session(self, name: str, fingerprint: str) -> Principal | None:
        """The holder a session names, while their token is still configured."""
        expected = self.fingerprint(name)
        if not expected or not hmac.compare_digest(expected, fingerprint):
            return None
        return principal_of(next(token for token in self._tokens if token.name == name))


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, presented: str | None) -> bool:
    """Whether the form's CSRF token is the session's, compared in constant time (as bytes: compare_digest
    refuses str with non-ASCII characters, and a form may send anything)."""
    return bool(expected) and bool(presented) and hmac.compare_digest(str(expected).encode(), str(presented).encode())


class SignInThrottle:
    """Failed sign-ins per client, in Redis (shared by every console process): after a few, each
    further attempt must wait twice as long as the one before, up to five minutes."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @staticmethod
    def _key(client_id: str) -> str:
        return f"{KEY_PREFIX}console:signin:{hashlib.sha256(client_id.encode()).hexdigest()[:24]}"

    def wait_s(self, client_id: str, *, now: float | None = None) -> float:
        """Seconds this client must still wait before its next attempt (0: go ahead)."""
        with reachable():
            until = self._redis.hget(self._key(client_id), "until")
        remaining = float(until or 0) - (time.time() if now is None else now)
        return max(0.0, remaining)

    def failed(self, client_id: str, *, now: float | None = None) -> float:
        """Count a failure; returns the wait it imposes on the next attempt, seconds."""
        stamp = time.time() if now is None else now
        key = self._key(client_id)
        with reachable():
            failures = int(self._redis.hincrby(key, "failures", 1))
            wait = delay_after(failures)
            with self._redis.pipeline() as pipe:
                pipe.hset(key, "until", stamp + wait)
                pipe.expire(key, THROTTLE_WINDOW_S)
                pipe.execute()
        return wait

    def succeeded(self, client_id: str) -> None:
        with reachable():
            self._redis.delete(self._key(client_id))


class CallRate:
    """Calls per token name per minute, counted in Redis (shared by every console process): the order API
    of a merchant may cost a Stripe read per call, so a token past its rate waits for the next minute."""

    def __init__(self, client: redis.Redis, per_minute: int) -> None:
        self._redis = client
        self._per_minute = per_minute

    def wait_s(self, name: str, *, now: float | None = None) -> float:
        """Count a call by *name*; 0 when it is within the rate, else the seconds until the next minute."""
        stamp = time.time() if now is None else now
        window = int(stamp // 60)
        key = f"{KEY_PREFIX}console:rate:{hashlib.sha256(name.encode()).hexdigest()[:24]}:{window}"
        with reachable(), self._redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            calls = int(pipe.execute()[0])
        return 0.0 if calls <= self._per_minute else (window + 1) * 60 - stamp


def delay_after(failures: int) -> float:
    """The wait imposed after *failures* failed sign-ins in a row: none for the first few, then
    1, 2, 4 … seconds, capped."""
    if failures <= THROTTLE_FREE_FAILURES:
        return 0.0
    return float(min(THROTTLE_MAX_WAIT_S, 2 ** (failures - THROTTLE_FREE_FAILURES - 1)))
