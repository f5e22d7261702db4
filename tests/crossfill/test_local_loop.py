"""The local loop as a developer runs it: `crossfill run`, `crossfill trigger`, `crossfill demo`."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from crossfill.embedded import PORT_FILE, free_port
from tests.support.processes import ROOT, Proc, port_open, wait_until

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
    env.update({"CROSSFILL_DATA_DIR": str(tmp_path / "var"), "CROSSFILL_PORT": str(port),
                "CROSSFILL_WEB_WORKERS": "2", "CROSSFILL_CONSOLE_PORT": str(free_port()),
                "CROSSFILL_METRICS_PORT": str(free_port())})
    return env


def _children_of(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.add(int(status.parent.name))
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def _child(run_pid: int, *argv: str) -> int | None:
    """The one child of *run_pid* whose command line holds *argv* in a row, or None."""
    found = [pid for pid in _children_of(run_pid) if _holds(_cmdline(pid), list(argv))]
    return found[0] if len(found) == 1 else None


def _holds(cmdline: list[str], argv: list[str]) -> bool:
    return any(cmdline[start:start + len(argv)] == argv for start in range(len(cmdline)))


def _worker_child(run_pid: int) -> int | None:
    return _child(run_pid, "-m", "crossfill.cli", "worker")


def _redis_child(run_pid: int) -> int | None:
    # redis-server retitles itself "<path>/redis-server 127.0.0.1:<port>"
    return next((pid for pid in _children_of(run_pid) if "/redis-server" in _cmdline(pid)[0]), None)


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_run_fulfills_purchases_through_a_worker_and_a_redis_kill_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    # Given `crossfill run` on a fresh data dir, with no Redis and no Stripe key configured
    port, sim_port = free_port(), free_port()
    env = _env(tmp_path, port)
    run = Proc("run", [sys.executable, "-m", "crossfill.cli", "run", "--sim-port", str(sim_port)], env, tmp_path)

    def buy(*options: str) -> str:
        trigger = subprocess.run(
            [sys.executable, "-m", "crossfill.cli", "trigger", "checkout.session.completed", "--cross-sell",
             "--api-base", f"http://127.0.0.1:{sim_port}", "--json", *options],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert trigger.returncode == 0, trigger.stderr
        return str(json.loads(trigger.stdout)["session"])

    def order(session_id: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "crossfill.cli", "order", session_id, "--json"], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
        return json.loads(done.stdout) if done.returncode == 0 else {}

    try:
        wait_until(lambda: port_open(port) and port_open(sim_port), timeout=40, what="crossfill run")
        wait_until(lambda: "Ctrl-C stops everything" in run.output(), timeout=40, what="crossfill run's banner")
        children = _children_of(run.pid)
        assert len(children) == 6, run.output()  # redis-server, simulator, worker, beat, gunicorn, console's gunicorn
        # beat runs reconcile and sweep on their schedule, its schedule file in the data dir
        wait_until(lambda: any((tmp_path / "var").glob("celerybeat-schedule*")), timeout=40, what="beat's schedule file")
        # and the console is up, with a generated operator token printed for local use
        console_port = env["CROSSFILL_CONSOLE_PORT"]
        assert f"ops console:     http://127.0.0.1:{console_port}/  (operator token: " in run.output()
        token = (tmp_path / "var" / "console_token").read_text().strip()
        assert token in run.output()
        status = requests.get(f"http://127.0.0.1:{console_port}/api/v1/status",
                              headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert status.status_code == 200 and "queues" in status.json()
        # and metrics are served inside, on the metrics port, never on the receiver's
        metrics_url = f"http://127.0.0.1:{env['CROSSFILL_METRICS_PORT']}/metrics"
        assert f"metrics:         {metrics_url}" in run.output()
        assert "crossfill_state_up 1.0" in requests.get(metrics_url, timeout=10).text
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 404
        # and the data dir is its owner's alone: itself and its directories 0700, every file 0600
        data_dir = tmp_path / "var"
        modes = {path: stat.S_IMODE(path.stat().st_mode) for path in [data_dir, *data_dir.rglob("*")]
                 if not path.is_symlink()}
        assert {path: mode for path, mode in modes.items() if mode != (0o700 if path.is_dir() else 0o600)} == {}

        # When a buyer purchases with the cross-sell on the simulator
        first_session = session_id = buy()

        # Then the order is fulfilled, with the cross-sell flagged
        wait_until(lambda: order(session_id).get("status") == "fulfilled", timeout=30, what="the order",
                   interval=0.5)
        assert sorted(item["cross_sell"] for item in order(session_id)["items"]) == [False, True]

        # And a purchase on a connected account reaches the receiver through the Connect endpoint
        shop_session = buy("--account", "acct_1LocalShop")
        wait_until(lambda: order(shop_session).get("status") == "fulfilled", timeout=30,
                   what="the connected account's order", interval=0.5)
        assert order(shop_session)["account"] == "acct_1LocalShop"

        # When the worker child is killed with SIGKILL
        killed = _worker_child(run.pid)
        assert killed is not None, run.output()
        os.kill(killed, signal.SIGKILL)

        # Then `crossfill run` starts another one, says so, and the next purchase is fulfilled
        wait_until(lambda: _worker_child(run.pid) not in (None, killed), timeout=60, what="a new worker child",
                   interval=0.2)
        restarted = _worker_child(run.pid)
        assert restarted is not None
        wait_until(lambda: f"exited with code {-signal.SIGKILL}" in run.output(), timeout=10,
                   what="the death logged")
        session_id = buy()
        wait_until(lambda: order(session_id).get("status") == "fulfilled", timeout=60,
                   what="the order after the restart", interval=0.5)
        assert run.alive()

        # When the embedded Redis is killed with SIGKILL
        port_file = tmp_path / "var" / PORT_FILE
        redis_port = port_file.read_text()
        killed_redis = _redis_child(run.pid)
        assert killed_redis is not None
        os.kill(killed_redis, signal.SIGKILL)

        # Then `crossfill run` starts it again on the port recorded for its clients (`crossfill order` reads
        # the first order through it, from the append-only file), and a purchase made after it is fulfilled
        wait_until(lambda: _redis_child(run.pid) not in (None, killed_redis), timeout=60,
                   what="a new redis-server child", interval=0.2)
        restarted_redis = _redis_child(run.pid)
        assert restarted_redis is not None and port_file.read_text() == redis_port
        wait_until(lambda: order(first_session).get("status") == "fulfilled", timeout=30,
                   what="the first order read back after the Redis restart", interval=0.5)
        session_id = buy()
        wait_until(lambda: order(session_id).get("status") == "fulfilled", timeout=90,
                   what="the order after the Redis restart", interval=0.5)
        assert run.alive()

        # When Ctrl-C reaches `crossfill run`
        os.kill(run.pid, signal.SIGINT)
        run.popen.wait(30)

        # Then it and every child, the restarted worker and Redis included, have exited
        assert run.popen.returncode == 0, run.output()
        for child in children | {restarted, restarted_redis}:
            assert _gone(child)
    finally:
        run.stop()


def test_demo_exits_0_with_every_outcome_as_expected(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port())
    done = subprocess.run([sys.executable, "-m", "crossfill.cli", "demo", "--data-dir", str(tmp_path / "demo")],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all outcomes as expected" in done.stdout
    assert done.stdout.count(" ok") == 9
    # the last two purchases came by a thin event only, and by a snapshot and a thin event at once
    assert "thin event only" in done.stdout and "snapshot + thin (migrating)" in done.stdout


@pytest.mark.parametrize(("value", "payload"), [(None, "snapshot"), ("thin", "thin"), ("BOTH", "both")])
def test_event_payload_reads_crossfill_event_payload(value: str | None, payload: str) -> None:
    from crossfill.local import event_payload

    assert event_payload({} if value is None else {"CROSSFILL_EVENT_PAYLOAD": value}) == payload


def test_run_refuses_an_unknown_event_payload(tmp_path: Path) -> None:
    env = {**_env(tmp_path, free_port()), "CROSSFILL_EVENT_PAYLOAD": "fat"}
    done = subprocess.run([sys.executable, "-m", "crossfill.cli", "run"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "CROSSFILL_EVENT_PAYLOAD" in done.stderr and "snapshot, thin, both" in done.stderr


def test_worker_processes_split_the_threads_and_stop_together(tmp_path: Path) -> None:
    # Given `crossfill worker --processes 2 -c 4` on a real Redis
    from fulfillment.settings import load_settings
    from tests.support.processes import RedisServer
    from worker.app import make_celery

    redis = RedisServer(tmp_path / "redis")
    env = _env(tmp_path, free_port())
    env["CROSSFILL_REDIS_URL"] = redis.url
    workers = Proc("workers", [sys.executable, "-m", "crossfill.cli", "worker", "--processes", "2", "-c", "4"], env,
                   tmp_path)
    try:
        # Then two Celery workers answer, with 2 threads each
        app = make_celery(load_settings({"CROSSFILL_REDIS_URL": redis.url}))
        wait_until(lambda: len(app.control.ping(timeout=0.5) or []) == 2, timeout=30, what="two workers",
                   interval=0.5)
        stats = app.control.inspect(timeout=2).stats() or {}
        assert sorted(worker["pool"]["max-concurrency"] for worker in stats.values()) == [2, 2]
        children = _children_of(workers.pid)
        assert len(children) == 2

        # When the parent is told to stop, every worker stops with it
        os.kill(workers.pid, signal.SIGTERM)
        workers.popen.wait(30)
        for child in children:
            assert _gone(child)
    finally:
        workers.stop()
        redis.stop()
