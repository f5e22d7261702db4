"""The real thing over HTTP: `crossfill web` (gunicorn, 2 workers), `crossfill worker`, and the Procfile's lines."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from crossfill.embedded import free_port
from fulfillment.inbox import Inbox
from fulfillment.signing import sign
from simulator.client import SimClient
from simulator.scenario import purchase
from simulator.server import SimServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_gunicorn_tests_secret"
STRIPE_KEY = "sk_test_gunicorn_tests"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


# --- processes -----------------------------------------------------------------------------------

def descendants(pid: int) -> set[int]:
    """Every live process below *pid* (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def is_running(pid: int) -> bool:
    """True while *pid* exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Service:
    """A crossfill process started for a test, with its log and everything it started below it."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    group: bool = False  #: signal the whole process group, as a Procfile runner does

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM, as a supervisor would, then check that nothing it started is left behind."""
        below = descendants(self.proc.pid)
        if self.proc.poll() is None:
            if self.group:
                os.killpg(self.proc.pid, signal.SIGTERM)
            else:
                self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            for pid in below:
                if is_running(pid):
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"{self.name} did not stop within {STOP_TIMEOUT_S} s of SIGTERM:\n{self.log_tail()}")
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (left := {pid for pid in below if is_running(pid)}) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"{self.name} left processes behind: {sorted(left)}\n{self.log_tail()}"


def base_env(redis_url: str, data_dir: Path, port: int) -> dict[str, str]:
    """The environment of a deployed crossfill: the developer's shell minus crossfill's own variables."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
    env.update({
        "CROSSFILL_REDIS_URL": redis_url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "CROSSFILL_PORT": str(port),
        "CROSSFILL_METRICS_PORT": str(free_port()),
        "CROSSFILL_DATA_DIR": str(data_dir),
        "CROSSFILL_WEB_WORKERS": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


def start(name: str, argv: list[str], env: dict[str, str], log_dir: Path, *, group: bool = False) -> Service:
    log = log_dir / f"{name}.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(argv, env=env, cwd=log_dir, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return Service(name, proc, log, group)


def wait_until(ready: Callable[[], bool], service: Service, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            pytest.fail(f"{service.name} exited with {service.proc.returncode} before {what}:\n{service.log_tail()}")
        try:
            if ready():
                return
        except (requests.RequestException, redis.RedisError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{service.name}: no {what} within {timeout} s:\n{service.log_tail()}")


@dataclass
class Web:
    service: Service
    url: str
    data_dir: Path
    port: int
    metrics_port: int

    @property
    def metrics_url(self) -> str:
        """GET /metrics, served inside on CROSSFILL_METRICS_PORT."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


def start_web(argv: list[str], env: dict[str, str], tmp: Path, port: int, *, group: bool = False) -> Web:
    service = start("web", argv, env, tmp, group=group)
    web = Web(service, f"http://127.0.0.1:{port}", tmp, port, int(env["CROSSFILL_METRICS_PORT"]))
    wait_until(lambda: requests.get(f"{web.url}/readyz", timeout=2).status_code == 200, service, "ready receiver")
    return web


@pytest.fixture(scope="module")
def web(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """`crossfill web` with two gunicorn workers on the session's Redis."""
    tmp, port = tmp_path_factory.mktemp("web"), free_port()
    started = start_web([sys.executable, "-m", "crossfill.cli", "web"], base_env(redis_server.url, tmp, port), tmp, port)
    yield started
    started.service.stop()
    assert started.service.proc.returncode == 0, started.service.log_tail()


@pytest.fixture
def stripe_api() -> Iterator[SimClient]:
    """crossfill's Stripe simulator, in this process, as the API the worker reads sessions from."""
    with SimServer() as server, SimClient(server.url, STRIPE_KEY) as client:
        yield client


def worker_env(redis_url: str, tmp: Path, stripe_api: SimClient) -> dict[str, str]:
    env = base_env(redis_url, tmp, free_port())
    env.update({"STRIPE_API_KEY": STRIPE_KEY, "STRIPE_API_BASE": stripe_api.base_url})
    return env


def expired_session_event(stripe_api: SimClient) -> dict[str, Any]:
    """A checkout.session.expired event for a session the buyer let expire in the simulator."""
    session_id = purchase(stripe_api, outcome="expired").session_id
    return event("checkout.session.expired") | {
        "data": {"object": {"id": session_id, "object": "checkout.session", "status": "expired"}}}


@pytest.fixture
def crossfill_worker(redis_server: Any, tmp_path: Path, stripe_api: SimClient) -> Iterator[Service]:
    """`crossfill worker` consuming the session's Redis (stopped, warm, after the test)."""
    service = start("worker", [sys.executable, "-m", "crossfill.cli", "worker", "--concurrency", "2"],
                    worker_env(redis_server.url, tmp_path, stripe_api), tmp_path)
    yield service
    service.stop()


# --- deliveries -----------------------------------------------------------------------------------

def event(event_type: str = "checkout.session.completed") -> dict[str, Any]:
    return {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": event_type, "created": int(time.time()),
            "livemode": False, "data": {"object": {"id": f"cs_test_{uuid.uuid4().hex}", "object": "checkout.session",
                                                   "payment_status": "paid"}}}


def deliver(url: str, payload: dict[str, Any] | bytes, *, session: requests.Session | None = None) -> requests.Response:
    """POST like Stripe: a fresh timestamp and signature on every delivery, a new connection each time."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Stripe-Signature": sign(body, [SECRET], timestamp=int(time.time())),
               "Content-Type": "application/json", "Connection": "close"}
    return (session or requests).post(f"{url}/webhooks/stripe", data=body, headers=headers, timeout=10)


def webhook_counts(web: Web) -> dict[tuple[str, str], float]:
    response = requests.get(web.metrics_url, timeout=5)
    assert response.status_code == 200
    text = response.text
    return {(sample.labels["type"], sample.labels["outcome"]): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == "crossfill_webhooks_total"}


def in_parallel(calls: list[Callable[[], Any]], threads: int) -> list[Any]:
    """Run *calls* on *threads* threads started together; return their results in order."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []
    gate = threading.Barrier(threads, timeout=30)

    def run(offset: int) -> None:
        try:
            gate.wait()
            for index in range(offset, len(calls), threads):
                results[index] = calls[index]()
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=run, args=(offset,)) for offset in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert errors == []
    return results


# --- crossfill web ----------------------------------------------------------------------------------

def test_accepts_then_answers_duplicate_over_http(web: Web, redis_client: redis.Redis) -> None:
    delivery = event()

    first, again = deliver(web.url, delivery), deliver(web.url, delivery)

    assert (first.status_code, first.json()) == (200, {"received": True})
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    assert redis_client.llen("events") == 1
    assert Inbox(redis_client).get(delivery["id"]).status == "enqueued"  # type: ignore[union-attr]


def test_concurrent_duplicates_across_workers_enqueue_once(web: Web, redis_client: redis.Redis) -> None:
    # Given 24 deliveries of one event, at once, spread over both gunicorn workers
    delivery = event()

    responses = in_parallel([lambda: deliver(web.url, delivery)] * 24, threads=12)

    # Then one was accepted, the rest were told duplicate or in flight, and one message was queued
    assert {response.status_code for response in responses} == {200}
    assert [response.json() for response in responses].count({"received": True}) == 1
    assert redis_client.llen("events") == 1


def test_metrics_are_summed_across_gunicorn_workers(web: Web) -> None:
    # Given the counts so far
    before = webhook_counts(web).get(("checkout.session.completed", "accepted"), 0)
    metrics_dir = web.data_dir / "metrics" / str(web.port)

    # When events are sent concurrently, 20 at a time on fresh connections, until both gunicorn
    # workers have served some (the kernel may hand one worker a whole batch)
    sent = 0
    for _ in range(10):
        responses = in_parallel([lambda: deliver(web.url, event()) for _ in range(20)], threads=8)
        assert [response.status_code for response in responses] == [200] * 20
        sent += 20
        if len(list(metrics_dir.glob("counter_*.db"))) == 2:
            break
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2, "expected one metrics file per gunicorn worker"

    # Then /metrics, on the internal port, counts every event of both workers
    for _ in range(4):
        assert webhook_counts(web)[("checkout.session.completed", "accepted")] - before == sent


# --- metrics stay inside ------------------------------------------------------------------------------

def listeners(port: int) -> set[int]:
    """The pids holding a socket that listens on TCP *port* (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    holders.add(int(entry.name))
            except OSError:
                continue
    return holders


def test_the_public_port_serves_no_metrics_and_the_internal_one_does(web: Web) -> None:
    # Given a delivery counted
    deliver(web.url, event())

    # Then the receiver's public port answers only the webhook and health: /metrics is 404
    assert requests.get(f"{web.url}/metrics", timeout=5).status_code == 404
    # and the metrics port, on loopback by default, shows the receiver's counters and the pipeline's
    # state (the workers' counters, read from Redis)
    text = requests.get(web.metrics_url, timeout=5).text
    assert "crossfill_webhooks_total" in text and "crossfill_state_up 1.0" in text
    assert "crossfill_stripe_api_calls" in text and "crossfill_queue_depth" in text
    assert requests.get(f"http://127.0.0.1:{web.metrics_port}/webhooks/stripe", timeout=5).status_code == 404
    # and one process listens on it, gunicorn's master, whose workers let go of the socket
    master = web.service.proc.pid
    holders = listeners(web.metrics_port)
    assert holders and holders <= {master, *descendants(master)}
    assert len(holders) == 1, f"{len(holders)} processes hold the metrics port"


def test_a_second_receiver_on_a_taken_metrics_port_stops_naming_it(web: Web, redis_server: Any,
                                                                    tmp_path: Path) -> None:
    # Given a receiver serving metrics on its port, when another is started with the same metrics port
    port = free_port()
    env = base_env(redis_server.url, tmp_path, port) | {"CROSSFILL_METRICS_PORT": str(web.metrics_port)}
    second = start("second-web", [sys.executable, "-m", "crossfill.cli", "web"], env, tmp_path)
    try:
        second.proc.wait(START_TIMEOUT_S)
    finally:
        second.stop()
    # Then it stops at once (exit 2: no restart can help), saying which setting to change; the first
    # still serves its metrics
    assert second.proc.returncode != 0
    assert f"CROSSFILL_METRICS_PORT={web.metrics_port}" in second.log_tail()
    assert requests.get(web.metrics_url, timeout=5).status_code == 200


def test_oversized_bodies_over_http(web: Web, redis_client: redis.Redis) -> None:
    huge = json.dumps(event() | {"padding": "x" * 300_000}).encode()

    with_length = deliver(web.url, huge)
    chunked = requests.post(f"{web.url}/webhooks/stripe", data=iter([huge[:100_000], huge[100_000:]]),
                            headers={"Stripe-Signature": sign(huge, [SECRET], timestamp=int(time.time()))},
                            timeout=10)

    assert with_length.status_code == 413
    assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
    assert chunked.status_code == 413
    assert chunked.json()["error"]["type"] == "payload_too_large"
    assert redis_client.dbsize() == 0


def raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("request_bytes", [
    b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n{}",
    b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nStripe-Signature: \xff\xfe\r\n"
    b"Connection: close\r\n\r\n{}",
    b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
    b"GET /webhooks/stripe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage-tls-hello\r\n\r\n",
], ids=["bad-length", "binary-signature", "bad-chunk", "get", "tls-hello"])
def test_malformed_http_never_gets_a_500(web: Web, request_bytes: bytes) -> None:
    answer = raw_http(web.port, request_bytes)

    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4") or answer == b"", answer[:300]
    assert b"Traceback" not in answer and b'File "' not in answer


def test_health_endpoints_over_http(web: Web) -> None:
    assert requests.get(f"{web.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{web.url}/readyz", timeout=5).json() == {"status": "ready", "redis": "ok"}
    assert requests.get(f"{web.url}/webhooks/stripe", timeout=5).status_code == 405


# --- crossfill worker -------------------------------------------------------------------------------

def test_worker_takes_an_accepted_event_to_processed(web: Web, crossfill_worker: Service, stripe_api: SimClient,
                                                     redis_client: redis.Redis) -> None:
    # Given a worker running and an event accepted by the receiver
    delivery = expired_session_event(stripe_api)
    assert deliver(web.url, delivery).json() == {"received": True}
    inbox = Inbox(redis_client)

    # Then the worker takes it off the queue and the inbox says processed
    wait_until(lambda: (record := inbox.get(delivery["id"])) is not None and record.status == "processed",
               crossfill_worker, "processed event")
    assert redis_client.llen("events") == 0


# --- the Procfile's two lines, run as a Procfile runner would -----------------------------------------

def procfile_commands() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip())


def test_procfile_web_and_worker_serve_count_and_process(redis_server: Any, redis_client: redis.Redis,
                                                         tmp_path: Path, stripe_api: SimClient) -> None:
    # Given the Procfile's web and worker started by `sh -c`, each in its own process group
    port = free_port()
    env = worker_env(redis_server.url, tmp_path, stripe_api) | {"CROSSFILL_PORT": str(port)}
    commands = procfile_commands()
    web_app = start_web(["sh", "-c", commands["web"].strip()], env, tmp_path, port, group=True)
    worker = start("procfile-worker", ["sh", "-c", commands["worker"].strip()], env, tmp_path, group=True)
    try:
        # When 12 events and one redelivery arrive
        deliveries = [expired_session_event(stripe_api) for _ in range(12)]
        responses = in_parallel([partial(deliver, web_app.url, d) for d in deliveries], threads=6)
        duplicate = deliver(web_app.url, deliveries[0])

        # Then all are accepted, /metrics sums both gunicorn workers, and the worker processes every one
        assert [response.status_code for response in responses] == [200] * 12
        assert duplicate.json() == {"received": True, "duplicate": True}
        for _ in range(4):
            counts = webhook_counts(web_app)
            assert counts.get(("checkout.session.expired", "accepted")) == 12, counts
            assert counts[("checkout.session.expired", "duplicate")] == 1
        inbox = Inbox(redis_client)
        wait_until(lambda: inbox.counts()["processed"] == 12, worker, "12 processed events")
    finally:
        worker.stop()
        web_app.service.stop()



@pytest.mark.parametrize("how", ["crossfill web", "gunicorn"])
def test_a_bad_metrics_address_stops_the_receiver_with_exit_2_naming_it(how: str, redis_server: Any,
                                                                        tmp_path: Path) -> None:
    # Given CROSSFILL_METRICS_BIND that is no address, for `crossfill web` or a plain gunicorn (Procfile)
    port = free_port()
    env = base_env(redis_server.url, tmp_path, port) | {"CROSSFILL_METRICS_BIND": "everywhere"}
    argv = ([sys.executable, "-m", "crossfill.cli", "web"] if how == "crossfill web" else
            [sys.executable, "-m", "gunicorn", "--config", "python:webhooks.gunicorn_conf", "--bind",
             f"127.0.0.1:{port}", "--workers", "1", "webhooks:create_app()"])

    # When it starts, then it exits 2 with one line naming the variable and the value
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "CROSSFILL_METRICS_BIND" in line]
    assert line.startswith("crossfill: CROSSFILL_METRICS_BIND='everywhere' is invalid")
