"""The benchmark's load generator: signed ``checkout.session.completed`` webhooks over keep-alive HTTP/1.1.

Run by ``bench/receiver.py`` in a process of its own; prints one JSON object with the phase's figures.

Every request (headers, body, signature) is built before the clock starts, so the generator spends
its CPU on sockets only. It speaks HTTP/1.1 itself over asyncio protocols (one event loop, no
threads): a ``Connection: close`` answer (gunicorn's sync workers) makes it reconnect.

Two modes:

* ``closed``: *connections* clients each send, wait for the answer, send again, for *duration* s.
* ``open``: requests are scheduled at a fixed *rate* whatever the server does; each latency is
  measured from the request's *scheduled* time, so a server that stalls is charged for the
  requests that queued behind the stall (no coordinated omission).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PATH = "/webhooks/stripe"
REQUEST_TIMEOUT_S = 10.0  #: a request unanswered after this is an error, seconds
ACCEPTED_BODY = {"received": True}  #: the answer of a receiver that recorded and enqueued the event
_ACCEPTED_JSON = b'{"received":true}\n'  #: ... as Flask's jsonify writes it (checked first: no decoding)

_SESSION: dict[str, Any] = {
    "id": "cs_test_@SESSION@",
    "object": "checkout.session",
    "after_expiration": None,
    "allow_promotion_codes": None,
    "amount_subtotal": 4900,
    "amount_total": 4900,
    "automatic_tax": {"enabled": False, "liability": None, "status": None},
    "billing_address_collection": None,
    "cancel_url": "https://shop.example/cart",
    "client_reference_id": None,
    "consent": None,
    "created": "@CREATED@",
    "currency": "usd",
    "customer": "cus_@SESSION@",
    "customer_creation": "if_required",
    "customer_details": {"address": {"city": None, "country": "US", "line1": None, "line2": None,
                                     "postal_code": "94103", "state": None},
                         "email": "buyer@example.com", "name": "Jenny Rosen", "phone": None,
                         "tax_exempt": "none", "tax_ids": []},
    "expires_at": "@EXPIRES@",
    "invoice": None,
    "livemode": False,
    "locale": None,
    "metadata": {},
    "mode": "payment",
    "payment_intent": "pi_@SESSION@",
    "payment_method_types": ["card"],
    "payment_status": "paid",
    "status": "complete",
    "submit_type": None,
    "subscription": None,
    "success_url": "https://shop.example/thanks?session_id={{CHECKOUT_SESSION_ID}}",
    "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    "url": None,
}


def _template() -> str:
    """A Stripe-sized event body (pretty-printed, as Stripe sends it) as a %-format string."""
    event = {
        "id": "evt_@EVENT@",
        "object": "event",
        "api_version": "2024-06-20",
        "created": "@CREATED@",
        "data": {"object": _SESSION},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
    }
    text = json.dumps(event, indent=2).replace("%", "%%")
    for hole, name, kind in (("@EVENT@", "event", "s"), ("@SESSION@", "session", "s"),
                             ('"@CREATED@"', "created", "d"), ('"@EXPIRES@"', "expires", "d")):
        text = text.replace(hole, f"%({name}){kind}")
    return text


def sign_requests(bodies: list[bytes], secret: str, host: str, *, close: bool = False) -> list[bytes]:
    """One complete HTTP request per event body in *bodies* (real events, e.g. the simulator's), signed now."""
    key = secret.encode()
    now = int(time.time())
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            "Content-Type: application/json; charset=utf-8\r\nAccept: */*; q=0.5, application/xml\r\n"
            + ("Connection: close\r\n" if close else "")
            + "Stripe-Signature: t=%d,v1=%s\r\nContent-Length: %d\r\n\r\n").encode()
    prefix = b"%d." % now
    return [head % (now, hmac.new(key, prefix + body, hashlib.sha256).hexdigest().encode(), len(body)) + body
            for body in bodies]


def build_requests(count: int, secret: str, host: str, *, close: bool = False) -> list[bytes]:
    """*count* complete HTTP requests, each a unique event signed now with *secret*.

    With *close*, each asks the server to close the connection after answering (one connection
    per request), instead of keeping it alive.
    """
    template = _template()
    key = secret.encode()
    now = int(time.time())
    run = uuid.uuid4().hex[:12]
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            "Content-Type: application/json; charset=utf-8\r\nAccept: */*; q=0.5, application/xml\r\n"
            + ("Connection: close\r\n" if close else "")
            + "Stripe-Signature: t=%d,v1=%s\r\nContent-Length: %d\r\n\r\n").encode()
    prefix = b"%d." % now
    out = []
    for n in range(count):
        unique = f"{run}{n:09d}"
        body = (template % {"event": unique, "session": unique, "created": now,
                            "expires": now + 86_400}).encode()
        signature = hmac.new(key, prefix + body, hashlib.sha256).hexdigest().encode()
        out.append(head % (now, signature, len(body)) + body)
    return out


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that runs one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        length = 0
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:stop if stop > 0 else None])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4:total])
        del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), body, b"\r\nconnection: close" in head))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))


@dataclass
class _Tally:
    """What one phase saw."""

    latencies: list[float] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)  #: perf_counter() of each answer
    accepted: int = 0  #: 200 {"received": true} answers
    accepted_in_window: int = 0  #: ... that arrived before the phase's deadline
    completed_in_window: int = 0  #: answers of any kind that arrived before the deadline
    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    warmup_accepted: int = 0  #: accepted answers to the one request each connection carries before the clock starts
    start_wall: float = 0.0  #: time.time() when the open loop's clock started (request i is due i / rate later)
    statuses: Counter[int] = field(default_factory=Counter)


def _is_accepted(body: bytes) -> bool:
    if body == _ACCEPTED_JSON:
        return True
    try:
        return bool(json.loads(body) == ACCEPTED_BODY)
    except ValueError:
        return False


class _Client:
    """A connection that reconnects when the server closes it, and records every answer."""

    def __init__(self, host: str, port: int, tally: _Tally) -> None:
        self.host, self.port, self.tally = host, port, tally
        self.conn: _Connection | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.conn = await loop.create_connection(_Connection, self.host, self.port)

    async def send(self, request: bytes, started: float, deadline: float, *, warmup: bool = False,
                   probe: bool = False) -> None:
        loop = asyncio.get_running_loop()
        tally = self.tally
        try:
            if self.conn is None or self.conn.closed:
                if self.conn is not None:
                    tally.reconnects += 1
                await self.connect()
            conn = self.conn
            assert conn is not None and conn.transport is not None
            conn.waiter = loop.create_future()
            conn.transport.write(request)
            status, body, close = await asyncio.wait_for(conn.waiter, REQUEST_TIMEOUT_S)
        except TimeoutError:
            tally.errors["timeout"] += 1
            self._drop()
            return
        except OSError as error:
            tally.errors[f"connection: {type(error).__name__}"] += 1
            self._drop()
            return
        done = time.perf_counter()
        if close:
            self._drop()
        if warmup:
            if status == 200 and (probe or _is_accepted(body)):
                tally.warmup_accepted += 1
            else:
                tally.errors[f"warm-up: http {status}"] += 1
            return
        tally.latencies.append(done - started)
        tally.finished_at.append(done)
        tally.statuses[status] += 1
        if done <= deadline:
            tally.completed_in_window += 1
        if status != 200:
            tally.errors[f"http {status}"] += 1
        elif not _is_accepted(body):
            tally.errors[f"200 but {body[:60]!r}"] += 1
        else:
            tally.accepted += 1
            if done <= deadline:
                tally.accepted_in_window += 1

    def _drop(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
        self.conn = None


async def _open_clients(requests: Iterator[bytes], host: str, port: int, connections: int,
                        tally: _Tally, *, warmup: bool = True) -> list[_Client]:
    """Connect *connections* clients, each carrying one request before the clock starts (unless not
    *warmup*), so that the measured window holds no connection set-up (gunicorn accepts and registers
    them lazily)."""
    clients = [_Client(host, port, tally) for _ in range(connections)]
    await asyncio.gather(*(client.connect() for client in clients))
    if warmup:
        await asyncio.gather(*(client.send(next(requests), 0.0, 0.0, warmup=True) for client in clients))
    else:  # connect each one with a health check instead, keeping every event for the measured window
        probe = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        await asyncio.gather(*(client.send(probe, 0.0, 0.0, warmup=True, probe=True) for client in clients))
    return clients


async def run_closed(requests: Iterator[bytes], host: str, port: int, connections: int,
                     duration: float, tally: _Tally) -> float:
    """Each of *connections* clients sends back to back until *duration* s have passed."""
    clients = await _open_clients(requests, host, port, connections, tally)
    start = time.perf_counter()
    deadline = start + duration

    async def loop(client: _Client) -> None:
        while time.perf_counter() < deadline:
            await client.send(next(requests), time.perf_counter(), deadline)

    await asyncio.gather(*(loop(client) for client in clients))
    for client in clients:
        client._drop()
    return start


async def run_open(requests: Iterator[bytes], host: str, port: int, connections: int,
                   duration: float, rate: float, tally: _Tally, *, warmup: bool = True) -> tuple[float, float]:
    """Schedule ``rate * duration`` requests at even intervals over *connections* clients.

    Returns:
        The start time and the largest delay, seconds, between a request's scheduled time and the
        moment the scheduler handed it out (the generator's own lag; it should stay near 1 ms).
    """
    clients = await _open_clients(requests, host, port, connections, tally, warmup=warmup)
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    total = int(rate * duration)
    start = time.perf_counter()
    tally.start_wall = time.time()
    deadline = start + duration
    interval = 1.0 / rate

    async def worker(client: _Client) -> None:
        while (scheduled := await queue.get()) is not None:
            await client.send(next(requests), scheduled, deadline + REQUEST_TIMEOUT_S)

    workers = [asyncio.create_task(worker(client)) for client in clients]
    lag = 0.0
    sent = 0
    while sent < total:
        now = time.perf_counter()
        while sent < total and start + sent * interval <= now:
            scheduled = start + sent * interval
            lag = max(lag, now - scheduled)
            queue.put_nowait(scheduled)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent * interval - time.perf_counter()))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    for client in clients:
        client._drop()
    return start, lag


def _percentile(ordered: list[float], fraction: float) -> float:
    """The *fraction* quantile of a sorted, non-empty list (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _supply(prebuilt: list[bytes], secret: str, host: str, *, unique: bool, close: bool,
            built: Counter[str]) -> Iterator[bytes]:
    """The prebuilt requests, then (unique) freshly built ones, or (not unique) the same again."""
    yield from prebuilt
    if not unique:
        yield from itertools.cycle(prebuilt)
    while True:
        more = build_requests(1000, secret, host, close=close)
        built["late"] += len(more)
        yield from more


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU time of *pid*, seconds (0 when it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _machine_cpu_s() -> tuple[float, float]:
    """Total and idle CPU time of the machine since boot, seconds."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return sum(values[:8]) / CLOCK_TICKS, (values[3] + values[4]) / CLOCK_TICKS


def _cpu_snapshot(watch: dict[str, list[int]]) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total, idle = _machine_cpu_s()
    snapshot = {name: sum(_process_cpu_s(pid) for pid in pids) for name, pids in watch.items()}
    snapshot.update(client=usage.ru_utime + usage.ru_stime, machine=total, idle=idle)
    return snapshot


def _cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per watched group over the load window; ``other`` is what the machine spent
    beyond them: kernel work charged to no process, and other processes."""
    used = {name: after[name] - before[name] for name in before if name not in ("machine", "idle")}
    elapsed = after["machine"] - before["machine"]
    busy = elapsed - (after["idle"] - before["idle"])
    used["other"] = busy - sum(used.values())
    used["machine_busy"] = busy / elapsed if elapsed else 0.0
    return used


def _watch(specs: list[str]) -> dict[str, list[int]]:
    watch: dict[str, list[int]] = {}
    for spec in specs:
        name, _, pids = spec.partition("=")
        watch[name] = [int(pid) for pid in pids.split(",") if pid]
    return watch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", choices=("closed", "open"), required=True)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--rate", type=float, default=1000.0, help="open mode: requests per second offered")
    parser.add_argument("--prebuild", type=int, default=40_000, help="requests built before the clock starts")
    parser.add_argument("--close", action="store_true", help="one connection per request (Connection: close)")
    parser.add_argument("--reuse", action="store_true", help="cycle the prebuilt requests (baseline only)")
    parser.add_argument("--bodies", help="open mode: a JSON-lines file of real events ({\"body\": ...} a line), "
                        "each posted once in order, with no warm-up request")
    parser.add_argument("--skip", type=int, default=0, help="with --bodies: start after this many events")
    parser.add_argument("--watch", action="append", default=[], metavar="NAME=PID,PID",
                        help="report the CPU time these processes use during the load")
    args = parser.parse_args(argv)
    secret = os.environ["BENCH_WEBHOOK_SECRET"]
    if args.duration > 240:
        parser.error("--duration must be at most 240 s: the signatures are made before the run and expire after 300 s")

    count = int(args.rate * args.duration) if args.mode == "open" else args.prebuild
    if args.bodies:
        with open(args.bodies, encoding="utf-8") as lines:
            bodies = [json.loads(line)["body"].encode() for line in lines][args.skip:args.skip + count]
        if args.mode != "open" or len(bodies) < count:
            parser.error(f"--bodies needs --mode open and at least rate x duration = {count} events")
        prebuilt = sign_requests(bodies, secret, f"{args.host}:{args.port}", close=args.close)
    else:
        prebuilt = build_requests(count, secret, f"{args.host}:{args.port}", close=args.close)
    built: Counter[str] = Counter(prebuilt=len(prebuilt))
    requests = iter(prebuilt) if args.bodies else _supply(
        prebuilt, secret, f"{args.host}:{args.port}", unique=not args.reuse, close=args.close, built=built)
    tally = _Tally()
    watch = _watch(args.watch)
    per_process_before = [[_process_cpu_s(pid) for pid in pids] for pids in watch.values()]
    cpu_before = _cpu_snapshot(watch)
    lag = None
    if args.mode == "closed":
        start = asyncio.run(run_closed(requests, args.host, args.port, args.connections, args.duration, tally))
    else:
        start, lag = asyncio.run(run_open(requests, args.host, args.port, args.connections, args.duration,
                                          args.rate, tally, warmup=not args.bodies))
    finished = time.perf_counter()
    cpu = _cpu_used(cpu_before, _cpu_snapshot(watch))
    per_process = {name: [round(_process_cpu_s(pid) - start_cpu, 2) for pid, start_cpu in zip(pids, starts, strict=True)]
                   for (name, pids), starts in zip(watch.items(), per_process_before, strict=True)}
    ordered = sorted(tally.latencies)
    # p99 of each second of the run (by answer time): shows whether the tail is steady or comes in bursts.
    per_second: dict[int, list[float]] = {}
    for latency, at in zip(tally.latencies, tally.finished_at, strict=True):
        per_second.setdefault(int(at - start), []).append(latency)
    p99_by_second = [round(1000 * _percentile(sorted(per_second[sec]), 0.99), 1) for sec in sorted(per_second)]
    result = {
        "mode": args.mode,
        "duration_s": args.duration,
        "wall_s": finished - start,
        "connections": args.connections,
        "offered_per_s": args.rate if args.mode == "open" else None,
        "answers": len(ordered),
        "start_wall": tally.start_wall,
        #: when the last answer came (the last webhook acknowledged), wall clock
        "last_answer_wall": tally.start_wall + (max(tally.finished_at) - start if tally.finished_at else 0.0),
        "statuses": {str(code): n for code, n in sorted(tally.statuses.items())},
        "accepted": tally.accepted,
        "warmup_accepted": tally.warmup_accepted,
        "accepted_per_s": tally.accepted_in_window / args.duration,
        "answers_per_s": tally.completed_in_window / args.duration,
        "errors": dict(tally.errors),
        "error_count": sum(tally.errors.values()),
        "reconnects": tally.reconnects,
        "p50_ms": None if not ordered else 1000 * _percentile(ordered, 0.50),
        "p90_ms": None if not ordered else 1000 * _percentile(ordered, 0.90),
        "p99_ms": None if not ordered else 1000 * _percentile(ordered, 0.99),
        "max_ms": None if not ordered else 1000 * ordered[-1],
        "over_10s": sum(1 for latency in ordered if latency > 10.0),  #: answered, but after Stripe's timeout
        "p99_ms_by_second": p99_by_second,
        "scheduler_lag_ms": None if lag is None else 1000 * lag,
        "cpu_s": cpu,
        "cpu_s_by_process": per_process,  #: per watched pid, in the order given (gunicorn: master, then workers)
        "requests_built_late": built["late"],
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
