"""Hostile input against the receiver as production serves it: `crossfill web` (gunicorn) on a real redis-server.

Over 2,000 requests generated from one seed: bad, garbled, stale and future signatures; truncated,
random, non-object, deeply nested and huge-number bodies; signed bodies holding lone surrogates,
invalid UTF-8 or duplicate keys; huge headers, wrong methods, paths and content types; chunked
bodies, absurd Content-Lengths and malformed HTTP on raw sockets. Mixed in, valid events that must be
accepted. Halfway, Redis is ``kill -9``ed and later restarted on its data dir.

Whatever arrives, the receiver answers below 500, except 503 with ``Retry-After`` to an event it
cannot record while Redis is down, and 404 to ``/metrics``, which the internal metrics port answers
with 200 throughout; no gunicorn worker dies.
"""
from __future__ import annotations

import json
import os
import random
import re
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from crossfill.embedded import free_port
from fulfillment.events import HANDLED_TYPES
from fulfillment.inbox import Inbox
from fulfillment.signing import compute_signature, sign
from fulfillment.store import KEY_PREFIX
from tests.support.processes import Proc, RedisServer, crossfill, wait_until
from webhooks.metrics import OUTCOMES, TYPE_LABELS

pytestmark = pytest.mark.integration

SEED = 20_261_130  #: one seed: a failure replays exactly
SECRET = "whsec_fuzz_tests_secret"
TOLERANCE_S = 300  #: the receiver's default signature tolerance
MAX_BODY_BYTES = 262_144  #: the receiver's default body limit
REQUESTS_BEFORE, REQUESTS_DURING, REQUESTS_AFTER = 2_000, 300, 700  #: per phase: Redis up, killed, restarted
SCRAPE_EVERY = 50  #: a GET /metrics after this many requests
TIMEOUT_S = 15.0  #: per request; generous on a busy machine

#: The start of a TLS ClientHello: the one request gunicorn may close without an answer.
TLS_HELLO = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"
#: Expectations of a request that may be recorded: answered 503 + Retry-After while Redis is down.
EVENT_EXPECTATIONS = ("accepted", "ignored", "duplicate", "payload or event")


# --- what was sent, what came back ----------------------------------------------------------------

@dataclass
class Sent:
    """One generated request: how it is sent, and what answer it must get."""

    kind: str
    method: str = "POST"
    path: str = "/webhooks/stripe"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] | None = None
    raw: bytes | None = None  #: sent as is on a fresh socket instead (malformed HTTP)
    #: "accepted" / "ignored" / "duplicate": a valid event (503 while Redis is down); "payload": 400
    #: invalid_payload; "payload or event": either; "too_large": 413; "refused": any 4xx; "any": below 500.
    expect: str = "any"
    event_id: str | None = None  #: of a valid event
    #: on a new connection, closed after the answer: gunicorn drops a keep-alive connection whose
    #: unread body is over 64 KiB (after answering it with "Connection: keep-alive"), so a body the
    #: receiver refuses unread is sent the way a client retrying on a fresh connection would
    fresh_connection: bool = False


@dataclass
class Answer:
    status: int | None  #: None: the server closed the connection without an answer (raw requests only)
    headers: dict[str, str]
    body: bytes


# --- the generator ----------------------------------------------------------------------------------

class Fuzzer:
    """Makes requests from one seeded random generator; remembers accepted events for redelivery."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.accepted_ids: list[str] = []
        self.serial = 0

    # building blocks

    def event_id(self) -> str:
        self.serial += 1
        return f"evt_fuzz{self.serial}_{self.rng.getrandbits(48):012x}"

    def event(self, event_type: str | None = None) -> dict[str, Any]:
        rng = self.rng
        event_type = event_type or rng.choice(sorted(HANDLED_TYPES))
        session = {"id": f"cs_test_fuzz{rng.getrandbits(64):016x}", "object": "checkout.session",
                   "payment_status": rng.choice(["paid", "unpaid", "no_payment_required"]),
                   "mode": "payment", "currency": "usd", "amount_total": rng.randrange(0, 10**6),
                   "metadata": {"note": self.text(rng.randrange(0, 30))}}
        return {"id": self.event_id(), "object": "event", "api_version": "2024-06-20", "type": event_type,
                "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
                "data": {"object": session}}

    def text(self, length: int) -> str:
        """Text of any code point but the surrogates (those are the hostile cases, made on purpose)."""
        chars = []
        while len(chars) < length:
            point = self.rng.choice([self.rng.randrange(32, 127), self.rng.randrange(0, 0x110000)])
            if not 0xD800 <= point <= 0xDFFF:
                chars.append(chr(point))
        return "".join(chars)

    def header(self, body: bytes, *, timestamp: int | None = None, secret: str = SECRET) -> str:
        return sign(body, [secret], timestamp=int(time.time()) if timestamp is None else timestamp)

    def signed(self, kind: str, body: bytes, expect: str, *, chunks: Iterable[bytes] | None = None,
               headers: dict[str, str] | None = None) -> Sent:
        """*body* signed with the endpoint's secret, sent whole or as *chunks* (Transfer-Encoding: chunked)."""
        try:
            event_id = json.loads(body)["id"] if expect in EVENT_EXPECTATIONS else None
        except (ValueError, RecursionError, TypeError, KeyError):
            event_id = None
        return Sent(kind, headers={"Stripe-Signature": self.header(body), "Content-Type": "application/json",
                                   **(headers or {})},
                    body=body if chunks is None else chunks, expect=expect, event_id=event_id)

    # kinds: valid events

    def valid_event(self) -> Sent:
        return self.signed("valid", json.dumps(self.event()).encode(), "accepted")

    def valid_chunked(self) -> Sent:
        body = json.dumps(self.event()).encode()
        cuts = sorted(self.rng.sample(range(1, len(body)), self.rng.randrange(1, 6)))
        chunks = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        return self.signed("valid chunked", body, "accepted", chunks=iter(chunks))

    def valid_odd_content_type(self) -> Sent:
        content_type = self.rng.choice(["text/plain", "application/x-www-form-urlencoded", "", "*/*",
                                        "multipart/form-data; boundary=xyz", "application/json; charset=latin-1",
                                        "application/octet-stream", "\u00e9/\u00e8"])
        body = json.dumps(self.event()).encode()
        return self.signed("valid, odd content type", body, "accepted", headers={"Content-Type": content_type})

    def ignored_event(self) -> Sent:
        event_type = self.rng.choice(["invoice.paid", "customer.created", "payment_intent.succeeded",
                                      "v1.billing.meter.no_meter_found", "checkout.session.weird_new_type"])
        event = self.event(event_type) | {"data": {"object": {"id": "x_1", "object": "thing"}}}
        return self.signed("ignored type", json.dumps(event).encode(), "ignored")

    def redelivery(self) -> Sent:
        if not self.accepted_ids:
            return self.valid_event()
        event = self.event() | {"id": self.rng.choice(self.accepted_ids)}
        return self.signed("redelivery", json.dumps(event).encode(), "duplicate")

    # kinds: signatures

    def bad_signature(self) -> Sent:
        rng = self.rng
        body = json.dumps(self.event()).encode()
        now = int(time.time())
        good = compute_signature(body, SECRET, now)
        flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
        header = rng.choice([
            "", "garbage", "t=,v1=", "v1=" + good, f"t={now}", f"t={now},v0={good}", f"t={now},v1={good.upper()}",
            f"t={now},v1={flipped}", f"t={now},v1={good[:32]}", f"t={now}.5,v1={good}", f"t=0x{now:x},v1={good}",
            self.header(body, secret="whsec_wrong"),
            self.header(body, timestamp=now - TOLERANCE_S - rng.randrange(60, 10**8)),
            self.header(body, timestamp=now + TOLERANCE_S + rng.randrange(60, 10**8)),
            f"t={now}," + ",".join(f"v1={rng.getrandbits(256):064x}" for _ in range(rng.randrange(2, 120))),
            f"t={'9' * rng.randrange(20, 400)},v1={good}",
            f"t=-{now},v1={good}",
            ",".join(rng.choice(["t=", "v1=", "v0=", "=", ",", "x"]) + self.text(5) for _ in range(20)),
            f"t={now},v1={good}," + "x" * rng.randrange(4_100, 7_000),  # over the 4,096-byte header limit
            self.text(rng.randrange(1, 200)),
        ])
        # An HTTP header value is bytes without line breaks: send the UTF-8 bytes of any text, as
        # latin-1 (what a client library sends), without control characters or surrounding blanks.
        header = "".join(char for char in header if char.isprintable()).strip()
        header = header.encode("utf-8").decode("latin-1")
        if rng.random() < 0.2:  # or: a good signature over a body changed afterwards
            header = self.header(body)
            position = rng.randrange(len(body))
            body = body[:position] + bytes([body[position] ^ 1]) + body[position + 1:]
        return Sent("bad signature", headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                    body=body, expect="refused")

    # kinds: signed bodies that are not Stripe events

    def signed_bad_body(self) -> Sent:
        rng = self.rng
        good = json.dumps(self.event()).encode()
        maker: Callable[[], bytes] = rng.choice([
            lambda: good[:rng.randrange(0, len(good))],
            lambda: rng.randbytes(rng.randrange(0, 3000)),
            self.lone_surrogate_body,
            self.invalid_utf8_body,
            lambda: json.dumps(rng.choice([[], [1, 2], "evt_1", 42, None, True, 1.5, {}])).encode(),
            self.nested_list_body,
            self.huge_number_body,
            lambda: good.replace(b'"object": "event"', b'"object": "event", "object": "event"', 1),
            lambda: good.replace(b'"id": "evt_', b'"id": "evt_x", "id": "evt_', 1),
            lambda: good.replace(b'"livemode": false', rng.choice([b'"livemode": NaN', b'"livemode": -Infinity'])),
            lambda: b"\xef\xbb\xbf" + good,
            lambda: good + rng.choice([b"x", b"}", b"\x00", b" {}", b"\n[]"]),
            lambda: b"",
        ])
        return self.signed("signed bad body", maker(), "payload")

    def signed_odd_body(self) -> Sent:
        """Signed bodies that may still be events (fields changed at random, deep but parseable nesting)."""
        maker = self.rng.choice([self.mangled_fields_body, self.nested_body])
        return self.signed("signed odd body", maker(), "payload or event")

    def lone_surrogate_body(self) -> bytes:
        rng = self.rng
        escape = rng.choice(["\\udfff", "\\ud800", "\\uDBFF", "\\udc00", "\\ude00\\ud83d", "\\ud83d"])
        event = self.event(rng.choice(["checkout.session.completed", "invoice.paid"]))
        place = rng.choice(["type", "id", "session", "value", "key"])
        mark = "SURROGATE"
        if place == "type":
            event["type"] = rng.choice(["invoice.", "checkout.session.", ""]) + mark
        elif place == "id":
            event["id"] = "evt_" + mark
        elif place == "session":
            event["data"]["object"]["id"] = "cs_test_" + mark
        elif place == "value":
            event["data"]["object"]["metadata"] = {"note": ["a", {"deep": mark}]}
        else:
            event["data"]["object"]["metadata"] = {mark: 1}
        return json.dumps(event).encode().replace(mark.encode(), escape.encode())

    def invalid_utf8_body(self) -> bytes:
        bad = self.rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xf5\x80\x80\x80",
                               b"\xe2\x82", b"\x80\x80", b"\xf0\x9f\x98"])
        return json.dumps(self.event()).encode().replace(b'"usd"', b'"us' + bad + b'd"', 1)

    def nested_list_body(self) -> bytes:
        depth = self.rng.choice([100, 900, 1000, 1100, 5000, 50_000, 100_000])
        return b"[" * depth + b"]" * depth

    def nested_body(self) -> bytes:
        """An event whose metadata nests deeply: an event up to the parser's depth, a refusal beyond."""
        depth = self.rng.choice([100, 900, 1000, 1100, 5000, 30_000])  # 7 bytes a level: within the body limit
        event = json.dumps(self.event()).encode()
        return event.replace(b'"metadata": {', b'"metadata": ' + b'{"a": ' * depth + b'{', 1) \
            .replace(b"}}}", b"}}}" + b"}" * depth, 1)

    def huge_number_body(self) -> bytes:
        """``created`` too large for Stripe's timestamps, or a number of more digits than anyone parses."""
        if self.rng.random() < 0.5:
            field_name, number = b'"created": ', self.rng.choice([
                b"9" * self.rng.randrange(20, 20_000), b"1e999", b"-1e999", b"1" + b"0" * 400 + b".5",
                b"18446744073709551617", b"9007199254740993", b"1.0e3"])
        else:
            field_name, number = b'"amount_total": ', b"9" * self.rng.randrange(4_301, 100_000)
        body = json.dumps(self.event()).encode()
        return re.sub(field_name + rb"\d+", field_name + number, body, count=1)

    def mangled_fields_body(self) -> bytes:
        rng = self.rng
        event = self.event()
        target = rng.choice(["id", "object", "type", "created", "livemode", "data"])
        if rng.random() < 0.3:
            del event[target]
        else:
            event[target] = rng.choice([None, "", 0, -1, [], {}, "x" * rng.randrange(1, 600), "evt_1\n",
                                        "Checkout.Session.Completed", "evt_" + "a" * 300, {"object": []},
                                        self.text(12), 10**30, "cs_1", True])
        if rng.random() < 0.3:
            event["data"] = {"object": {"id": rng.choice(["cs_1\n", "cs_", "pi_1", "cs_" + "a" * 300, 7, None]),
                                        "object": "checkout.session"}}
        return json.dumps(event).encode()

    # kinds: HTTP

    def oversized(self) -> Sent:
        body = json.dumps(self.event() | {"padding": "x" * (MAX_BODY_BYTES + self.rng.randrange(1, 50_000))}).encode()
        if self.rng.random() < 0.5:
            sent = self.signed("oversized", body, "too_large")
        else:
            sent = self.signed("oversized, chunked", body, "too_large", chunks=iter([body[:100_000], body[100_000:]]))
        sent.fresh_connection = True
        return sent

    def odd_method_or_path(self) -> Sent:
        rng = self.rng
        method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST", "FOO", "PROPFIND"])
        path = rng.choice(["/webhooks/stripe", "/webhooks/stripe/", "/webhooks/STRIPE", "/webhooks", "/",
                           "/metrics", "/readyz", "/healthz", "/%00", "/..%2f..%2fetc%2fpasswd", "/\u00e9",
                           "/webhooks/stripe?" + "a=1&" * rng.randrange(1, 400), "/x" * rng.randrange(1, 300)])
        if method == "POST" and path.split("?")[0] == "/webhooks/stripe":
            path = "/webhooks/stripe/"
        if method in ("GET", "HEAD") and path.split("?")[0] in ("/metrics", "/readyz", "/healthz", "/webhooks"):
            path = "/nope"
        body = rng.choice([None, b"", b"{}", rng.randbytes(rng.randrange(0, 500))])
        return Sent("method or path", method=method, path=path, body=body, expect="refused" if method != "OPTIONS"
                    else "any")

    def huge_headers(self) -> Sent:
        rng = self.rng
        body = json.dumps(self.event()).encode()
        headers = {"Stripe-Signature": self.header(body)}
        choice = rng.randrange(3)
        if choice == 0:
            headers["X-Junk"] = "j" * rng.randrange(8_200, 60_000)
        elif choice == 1:
            headers.update({f"X-Many-{number}": "v" for number in range(rng.randrange(101, 300))})
        else:
            headers["Stripe-Signature"] += ",v1=" + "0" * rng.randrange(8_200, 20_000)
        return Sent("huge headers", headers=headers, body=body, expect="refused")

    # kinds: malformed HTTP, on a raw socket

    def malformed_http(self) -> Sent:
        rng = self.rng
        body = json.dumps(self.event()).encode()
        signature = self.header(body).encode()
        head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        raw = rng.choice([
            head + b"Content-Length: " + str(rng.choice([10**12, 10**30, 2**63, MAX_BODY_BYTES + 1])).encode()
            + b"\r\nStripe-Signature: " + signature + b"\r\n\r\n" + body,
            head + b"Content-Length: -5\r\n\r\n" + body,
            head + b"Content-Length: " + rng.choice([b"abc", b"1, 2", b"+5", b"0x10", b"5 5", b""]) + b"\r\n\r\n{}",
            head + b"Content-Length: " + str(len(body) + rng.randrange(1, 5000)).encode() + b"\r\nStripe-Signature: "
            + signature + b"\r\n\r\n" + body,  # promises more than it sends, then half-closes
            head + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            head + b"Transfer-Encoding: chunked\r\n\r\n" + rng.choice([b"zz\r\n", b"ffffffffffffffffff\r\nx\r\n",
                                                                       b"5\r\nab\r\n", b"3;ext=1\r\nabc\r\n",
                                                                       b"-1\r\n", b"2\r\n{}"]),
            head + b"Transfer-Encoding: " + rng.choice([b"gzip, chunked", b"identity", b"chunked, chunked",
                                                         b"chunked\x00"]) + b"\r\n\r\n0\r\n\r\n",
            b"POST /webhooks/stripe HTTP/" + rng.choice([b"9.9", b"1.x", b"", b"1.1 extra"]) + b"\r\nHost: x\r\n\r\n",
            b"POST /webhooks/stripe\r\n\r\n",
            b"post /webhooks/stripe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"POST /" + b"a" * rng.randrange(4_100, 20_000) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            head + b"Stripe-Signature: " + rng.choice([b"\xff\xfe", b"t=\xe9", b"\x00", b"t=1\x01v1=2"])
            + b"\r\nContent-Length: 2\r\n\r\n{}",
            head + rng.choice([b"No-Colon-Here\r\n", b"Bad Name: x\r\n", b" folded: x\r\n", b"X: a\r\n b\r\n",
                               b"X-\x00: y\r\n", b"Content-Length : 2\r\n"]) + b"\r\n{}",
            b"POST /webhooks/stripe HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
            TLS_HELLO + rng.randbytes(64),
            rng.randbytes(rng.randrange(1, 600)) + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * rng.randrange(101, 200) + b"\r\n",
        ])
        return Sent("malformed HTTP", raw=raw, expect="any")

    def scrape_in_stream(self) -> Sent:
        """A scrape of the public port among the requests: refused, metrics are served inside (each phase
        also scrapes the internal port every SCRAPE_EVERY requests)."""
        return Sent("scrape", method="GET", path="/metrics", expect="refused")


KINDS: list[tuple[Callable[[Fuzzer], Sent], int]] = [
    (Fuzzer.valid_event, 14), (Fuzzer.valid_chunked, 3), (Fuzzer.valid_odd_content_type, 3),
    (Fuzzer.ignored_event, 5), (Fuzzer.redelivery, 5),
    (Fuzzer.bad_signature, 20), (Fuzzer.signed_bad_body, 22), (Fuzzer.signed_odd_body, 4),
    (Fuzzer.oversized, 1), (Fuzzer.odd_method_or_path, 8), (Fuzzer.huge_headers, 3),
    (Fuzzer.malformed_http, 10), (Fuzzer.scrape_in_stream, 2),
]


# --- sending ----------------------------------------------------------------------------------------

class Client:
    """Sends generated requests to the receiver: a keep-alive session, raw sockets for malformed HTTP."""

    def __init__(self, port: int, metrics_port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.session = requests.Session()

    def send(self, sent: Sent) -> Answer:
        if sent.raw is not None:
            return send_raw(self.port, sent.raw)
        if sent.fresh_connection:
            with requests.Session() as once:
                response = once.request(sent.method, self.url + sent.path, data=sent.body, timeout=TIMEOUT_S,
                                        headers={**sent.headers, "Connection": "close"})
            return Answer(response.status_code, dict(response.headers), response.content)
        response = self.session.request(sent.method, self.url + sent.path, headers=sent.headers, data=sent.body,
                                        timeout=TIMEOUT_S, allow_redirects=False)
        return Answer(response.status_code, dict(response.headers), response.content)

    def metrics(self) -> str:
        response = self.session.get(self.metrics_url, timeout=TIMEOUT_S)
        assert response.status_code == 200, (response.status_code, response.text[:500])
        return response.text

    def close(self) -> None:
        self.session.close()


def send_raw(port: int, data: bytes) -> Answer:
    """Send *data* as is on a new connection, say so (half-close), and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as conn:
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)  # the sender is done: a server waiting for more sees the end
        except OSError:
            pass  # the server answered and closed before taking it all: read what it said
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    match = re.match(rb"HTTP/1\.[01] (\d{3})", received)
    return Answer(int(match.group(1)) if match else None, {}, received)


@dataclass
class Tally:
    """What the run saw, for the assertions and the report."""

    statuses: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    accepted: int = 0
    accepted_before_kill: int = 0
    requests: int = 0
    scrapes: int = 0


def check(sent: Sent, answer: Answer, *, redis_down: bool, where: str) -> None:
    """Fail with the request and the answer unless *answer* is one *sent* may get."""
    status = answer.status
    context = f"{where} -> {status} {answer.body[:300]!r}"
    if status is None:
        assert sent.raw is not None and sent.raw.startswith(TLS_HELLO), f"{context}: closed without an answer"
        return
    if status == 503 and redis_down and sent.expect in EVENT_EXPECTATIONS:
        assert answer.headers.get("Retry-After"), context
        return
    assert status < 500, context
    assert b"Traceback" not in answer.body and b'File "' not in answer.body, context
    error = _error_type(answer)
    if sent.expect == "accepted":
        assert (status, json.loads(answer.body)) == (200, {"received": True}), context
    elif sent.expect == "ignored":
        assert (status, json.loads(answer.body)) == (200, {"received": True, "ignored": True}), context
    elif sent.expect == "duplicate":
        assert (status, json.loads(answer.body)) == (200, {"received": True, "duplicate": True}), context
    elif sent.expect == "payload":
        assert (status, error) == (400, "invalid_payload"), context
    elif sent.expect == "payload or event":
        assert (status, error) == (400, "invalid_payload") or status == 200, context
    elif sent.expect == "too_large":
        assert (status, error) == (413, "payload_too_large"), context
    elif sent.expect == "refused":
        assert 400 <= status < 500, context
        if sent.kind == "bad signature" and sent.method == "POST" and sent.path == "/webhooks/stripe":
            assert (status, error) == (400, "signature_verification"), context


def _json(answer: Answer) -> Any:
    try:
        return json.loads(answer.body)
    except ValueError:
        return None


def _error_type(answer: Answer) -> str | None:
    try:
        return str(_json(answer)["error"]["type"])
    except (KeyError, TypeError):
        return None


def run_phase(fuzzer: Fuzzer, client: Client, tally: Tally, count: int, *, redis_down: bool, where: str) -> None:
    kinds, weights = zip(*KINDS, strict=True)
    previous = "nothing"
    for number in range(count):
        kind = fuzzer.rng.choices(kinds, weights)[0]
        sent = kind(fuzzer)
        shown = sent.body[:200] if isinstance(sent.body, bytes) else (sent.raw or b"")[:200]
        context = f"{where} #{number} (seed {SEED}): {sent.kind} {sent.method} {sent.path[:80]} {shown!r}"
        try:
            answer = client.send(sent)
        except requests.RequestException as error:
            pytest.fail(f"{context}: no answer ({error!r}); headers {str(sent.headers)[:300]}; "
                        f"after {previous}")
        previous = f"{context} -> {answer.status}"
        check(sent, answer, redis_down=redis_down, where=context)
        tally.requests += 1
        tally.statuses[(sent.kind, answer.status)] += 1
        if answer.status == 200 and sent.raw is None and _json(answer) == {"received": True}:
            tally.accepted += 1
            assert sent.event_id is not None, context
            fuzzer.accepted_ids.append(sent.event_id)
        if number % SCRAPE_EVERY == 0:
            state_up = scrape(client, tally)
            assert state_up == (0.0 if redis_down else 1.0), f"{where} #{number}: crossfill_state_up {state_up}"


def scrape(client: Client, tally: Tally) -> float:
    """GET /metrics (must be 200 and parse), returning crossfill_state_up; labels from the bounded sets."""
    tally.scrapes += 1
    state_up = -1.0
    for family in text_string_to_metric_families(client.metrics()):
        for sample in family.samples:
            if sample.name == "crossfill_webhooks_total":
                assert sample.labels["type"] in TYPE_LABELS and sample.labels["outcome"] in OUTCOMES, sample
            if sample.name == "crossfill_state_up":
                state_up = sample.value
    return state_up


def accepted_in_metrics(client: Client) -> float:
    return sum(sample.value for family in text_string_to_metric_families(client.metrics())
               for sample in family.samples
               if sample.name == "crossfill_webhooks_total" and sample.labels["outcome"] == "accepted")


# --- the processes ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own, which the fuzz test kills."""
    server = RedisServer(tmp_path_factory.mktemp("fuzz-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web(fuzz_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, int, int]]:
    """`crossfill web`: gunicorn with two workers, on the module's Redis; its port and metrics port."""
    tmp_path, port, metrics_port = tmp_path_factory.mktemp("fuzz-web"), free_port(), free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
    env.update({"CROSSFILL_REDIS_URL": fuzz_redis.url, "STRIPE_WEBHOOK_SECRET": SECRET, "CROSSFILL_PORT": str(port),
                "CROSSFILL_METRICS_PORT": str(metrics_port), "CROSSFILL_DATA_DIR": str(tmp_path / "data"), "CROSSFILL_WEB_WORKERS": "2",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    proc = crossfill("web", ["web"], env, tmp_path)

    def ready() -> bool:
        assert proc.alive(), proc.output()
        try:
            return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(ready, timeout=30, what="crossfill web to answer /readyz")
    wait_until(lambda: len(worker_pids(proc)) == 2, timeout=30, what="both gunicorn workers to boot")
    yield proc, port, metrics_port
    proc.stop(timeout=20)


def queued(server: RedisServer) -> int:
    """Messages on the Celery queue ``events`` (no worker runs here: every accepted event stays there)."""
    client = server.client()
    try:
        return int(client.llen("events"))
    finally:
        client.close()


def full_log(proc: Proc) -> str:
    proc.output()  # flushes
    return proc.log_path.read_text(errors="replace")


def worker_pids(proc: Proc) -> list[str]:
    """The gunicorn workers booted so far, from the whole log."""
    return re.findall(r"Booting worker with pid: (\d+)", full_log(proc))


# --- the test ---------------------------------------------------------------------------------------

def test_a_body_shorter_than_its_content_length_is_refused(web: tuple[Proc, int, int], fuzz_redis: RedisServer) -> None:
    # Given a signed event whose request announces more bytes than it sends, then ends
    _, port, _ = web
    body = json.dumps(Fuzzer(SEED).event()).encode()
    signature = sign(body, [SECRET], timestamp=int(time.time())).encode()
    request = (b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "
               + str(len(body) + 10).encode() + b"\r\nStripe-Signature: " + signature + b"\r\n\r\n" + body)

    answer = send_raw(port, request)

    # Then it is refused (gunicorn hands the application the short body without complaint)
    assert answer.status == 400, answer.body
    assert b"Content-Length announced" in answer.body
    assert queued(fuzz_redis) == 0


@pytest.mark.parametrize(("field", "value"), [(b"price_mismatch", b"not-a-number"), (b"\xff\xfe", b"1")])
def test_metrics_answer_when_the_state_holds_a_bad_value(web: tuple[Proc, int, int], fuzz_redis: RedisServer,
                                                         field: bytes, value: bytes) -> None:
    # Given a value in Redis that crossfill does not write (a count that is not a number, a name not UTF-8)
    client, raw = Client(web[1], web[2]), redis.Redis(port=fuzz_redis.port)
    try:
        raw.hset(f"{KEY_PREFIX}anomalies", field, value)

        # Then /metrics still answers 200, with crossfill_state_up 0
        tally = Tally()
        assert [scrape(client, tally) for _ in range(4)] == [0.0] * 4

        # And 1 again once the value is gone
        raw.hdel(f"{KEY_PREFIX}anomalies", field)
        assert scrape(client, tally) == 1.0
    finally:
        raw.close()
        client.close()


def test_no_5xx_for_hostile_input_and_metrics_always_answer(fuzz_redis: RedisServer,
                                                           web: tuple[Proc, int, int]) -> None:
    proc, port, metrics_port = web
    fuzzer, client, tally = Fuzzer(SEED), Client(port, metrics_port), Tally()
    started = time.monotonic()
    try:
        booted, log_start = worker_pids(proc), len(full_log(proc))

        # Given the receiver on a live Redis, when generated requests arrive
        run_phase(fuzzer, client, tally, REQUESTS_BEFORE, redis_down=False, where="Redis up")
        tally.accepted_before_kill = tally.accepted

        # When Redis is killed (SIGKILL, no shutdown) and requests go on arriving
        fuzz_redis.proc.kill9()
        run_phase(fuzzer, client, tally, REQUESTS_DURING, redis_down=True, where="Redis killed")
        assert any(status == 503 for (_, status) in tally.statuses), "no event was refused while Redis was down"
        ready = client.session.get(f"{client.url}/readyz", timeout=TIMEOUT_S)
        assert ready.status_code == 503 and ready.headers["Retry-After"]

        # When Redis is back on its port and data dir: a valid event is accepted again (503 until it is)
        fuzz_redis.restart()
        accepted_at_restart = tally.accepted
        survivors = fuzz_redis.client()
        try:  # redeliveries from here on: of the events that survived the kill
            inbox = Inbox(survivors)
            fuzzer.accepted_ids = [event_id for event_id in fuzzer.accepted_ids if inbox.get(event_id) is not None]
        finally:
            survivors.close()
        restarted = time.monotonic()
        while True:
            sent = fuzzer.valid_event()
            answer = client.send(sent)
            check(sent, answer, redis_down=True, where="Redis restarting: valid event")
            if answer.status == 200:
                tally.accepted += 1
                break
            assert time.monotonic() - restarted < 30, "no event accepted within 30 s of Redis coming back"

        # Then everything works again, with no 503 at all
        run_phase(fuzzer, client, tally, REQUESTS_AFTER, redis_down=False, where="Redis back")

        # And /metrics counted every accepted event across both gunicorn workers, no worker died, nothing
        # unexpected was logged, and the events accepted since the restart are all queued
        assert accepted_in_metrics(client) == tally.accepted
        assert scrape(client, tally) == 1.0
        log = full_log(proc)[log_start:]  # what this test made the receiver log
        assert worker_pids(proc) == booted, f"a gunicorn worker died or was replaced:\n{log[-6000:]}"
        assert "Traceback" not in log and "unexpected error" not in log, log[-6000:]
        in_queue = queued(fuzz_redis)
        assert tally.accepted - accepted_at_restart <= in_queue <= tally.accepted
    finally:
        client.close()
    elapsed = time.monotonic() - started
    by_status: Counter[int | None] = Counter()
    for (_, status), count in tally.statuses.items():
        by_status[status] += count
    print(f"\nfuzz: {tally.requests} requests + {tally.scrapes} scrapes in {elapsed:.1f} s; "
          f"statuses {dict(sorted(by_status.items(), key=str))}; {tally.accepted} accepted "
          f"({tally.accepted_before_kill} before the kill; {tally.accepted - in_queue} of them lost by it)")
    assert tally.requests >= 2_000
