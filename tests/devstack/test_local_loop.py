"""The local loop as a developer runs it: `crossfill run`, `crossfill trigger`, `crossfill demo`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT, Proc, port_open, wait_until
from worker.devstack.embedded import free_port

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
    env.update({"CROSSFILL_DATA_DIR": str(tmp_path / "var"), "CROSSFILL_PORT": str(port),
                "CROSSFILL_WEB_WORKERS": "2"})
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


def test_run_then_trigger_fulfills_a_purchase_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    # Given `crossfill run` on a fresh data dir, with no Redis and no Stripe key configured
    port, sim_port = free_port(), free_port()
    env = _env(tmp_path, port)
    run = Proc("run", [sys.executable, "-m", "worker.cli", "run", "--sim-port", str(sim_port)], env, tmp_path)
    try:
        wait_until(lambda: port_open(port) and port_open(sim_port), timeout=40, what="crossfill run")
        children = _children_of(run.pid)
        assert len(children) == 4, run.output()  # redis-server, simulator, worker, gunicorn

        # When a buyer purchases with the cross-sell on the simulator
        trigger = subprocess.run(
            [sys.executable, "-m", "worker.cli", "trigger", "checkout.session.completed", "--cross-sell",
             "--api-base", f"http://127.0.0.1:{sim_port}", "--json"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert trigger.returncode == 0, trigger.stderr
        session_id = json.loads(trigger.stdout)["session"]

        # Then the order is fulfilled, with the cross-sell flagged
        def order() -> dict:
            done = subprocess.run([sys.executable, "-m", "worker.cli", "order", session_id, "--json"], env=env,
                                  cwd=ROOT, capture_output=True, text=True, timeout=30)
            return json.loads(done.stdout) if done.returncode == 0 else {}

        wait_until(lambda: order().get("status") == "fulfilled", timeout=30, what="the order", interval=0.5)
        assert sorted(item["cross_sell"] for item in order()["items"]) == [False, True]

        # When Ctrl-C reaches `crossfill run`
        os.kill(run.pid, signal.SIGINT)
        run.popen.wait(30)

        # Then it and every child have exited
        assert run.popen.returncode == 0, run.output()
        for child in children:
            assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    finally:
        run.stop()


def test_demo_exits_0_with_every_outcome_as_expected(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port())
    done = subprocess.run([sys.executable, "-m", "worker.cli", "demo", "--data-dir", str(tmp_path / "demo")],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all outcomes as expected" in done.stdout
    assert done.stdout.count(" ok") == 7


def test_worker_processes_split_the_threads_and_stop_together(tmp_path: Path) -> None:
    # Given `crossfill worker --processes 2 -c 4` on a real Redis
    from fulfillment.settings import load_settings
    from tests.support.processes import RedisServer
    from worker.app import make_celery

    redis = RedisServer(tmp_path / "redis")
    env = _env(tmp_path, free_port())
    env["CROSSFILL_REDIS_URL"] = redis.url
    workers = Proc("workers", [sys.executable, "-m", "worker.cli", "worker", "--processes", "2", "-c", "4"], env,
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
            assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    finally:
        workers.stop()
        redis.stop()
