"""The supervisor behind `crossfill run | web | worker --processes`: restarts a child that dies, on real processes."""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import pytest

from crossfill.supervisor import Supervisor, restart_delay
from tests.support.processes import wait_until

#: A child that exits with code 0 the first time it runs (leaving a mark), and then runs until stopped.
DIES_ONCE = ("import pathlib, sys, time\n"
             "mark = pathlib.Path(sys.argv[1])\n"
             "if not mark.exists():\n"
             "    mark.write_text('died once')\n"
             "    sys.exit(0)\n"
             "time.sleep(600)\n")


def test_restart_delays_double_up_to_the_cap() -> None:
    assert [restart_delay(deaths, base=1, cap=30) for deaths in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_child_that_dies_is_restarted_and_stopped_with_the_rest(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # Given a supervised child that exits 0 once (as a Celery worker did when its Redis was killed)
    supervisor = Supervisor(restart_base=0.05)
    supervisor.start("flaky", [sys.executable, "-c", DIES_ONCE, str(tmp_path / "mark")])
    first_pid = supervisor.children["flaky"].pid

    def stop_once_restarted() -> None:
        wait_until(lambda: supervisor.children["flaky"].pid != first_pid and supervisor.children["flaky"].poll() is None,
                   timeout=30, what="the child to be restarted")
        supervisor.request_stop()

    watcher = threading.Thread(target=stop_once_restarted)
    watcher.start()

    # When the supervisor runs
    with caplog.at_level(logging.WARNING, logger="crossfill.supervisor"):
        return_code = supervisor.wait()
    watcher.join()

    # Then it was restarted, the death logged with its name and exit code, and it is stopped at the end
    assert return_code == 0
    assert (tmp_path / "mark").exists()
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith(f"flaky (pid {first_pid}) exited with code 0") for message in messages), messages
    assert any(message.startswith("flaky restarted") for message in messages), messages
    assert supervisor.children["flaky"].poll() is not None


def test_a_child_that_keeps_dying_is_reported_and_everything_stops(caplog: pytest.LogCaptureFixture) -> None:
    # Given a child that fails at once, every time, beside one that runs fine
    supervisor = Supervisor(restart_base=0.01, restart_cap=0.05, give_up_after=3)
    supervisor.start("steady", [sys.executable, "-c", "import time; time.sleep(600)"])
    supervisor.start("broken", [sys.executable, "-c", "import sys; sys.exit(3)"])

    # When the supervisor runs
    with caplog.at_level(logging.WARNING, logger="crossfill.supervisor"):
        return_code = supervisor.wait()

    # Then it restarted it 3 times with backoff, then gave up: exit code 1, the child named, nothing left running
    messages = [record.getMessage() for record in caplog.records]
    assert return_code == 1
    assert sum(message.startswith("broken restarted") for message in messages) == 3, messages
    assert sum("exited with code 3 after" in message for message in messages) == 3, messages
    assert [record.levelname for record in caplog.records if "keeps dying" in record.getMessage()] == ["CRITICAL"]
    assert all(proc.poll() is not None for proc in supervisor.children.values())


def test_a_child_that_ran_stably_before_dying_starts_its_backoff_afresh(caplog: pytest.LogCaptureFixture) -> None:
    # Given a child that dies after running longer than the supervisor's "stable" threshold, every time
    supervisor = Supervisor(restart_base=0.01, stable_after=0.2, give_up_after=1)
    supervisor.start("long-lived", [sys.executable, "-c", "import time; time.sleep(0.5)"])

    def stop_after_three_restarts() -> None:
        wait_until(lambda: sum(r.getMessage().startswith("long-lived restarted") for r in caplog.records) >= 3,
                   timeout=60, what="three restarts")
        supervisor.request_stop()

    watcher = threading.Thread(target=stop_after_three_restarts)
    with caplog.at_level(logging.WARNING, logger="crossfill.supervisor"):
        watcher.start()
        return_code = supervisor.wait()
    watcher.join()

    # Then it never counts as "keeps dying", though it died more often than give_up_after
    assert return_code == 0
    assert not any("keeps dying" in record.getMessage() for record in caplog.records)
    assert all("death 1 in a row" in record.getMessage() for record in caplog.records if "exited" in record.getMessage())


def test_a_child_that_exits_2_for_bad_configuration_is_not_restarted(caplog: pytest.LogCaptureFixture) -> None:
    # Given a child that exits 2, as every crossfill command does on a bad setting
    supervisor = Supervisor(restart_base=0.01)
    supervisor.start("misconfigured", [sys.executable, "-c", "import sys; sys.exit(2)"])

    # When the supervisor runs
    with caplog.at_level(logging.WARNING, logger="crossfill.supervisor"):
        return_code = supervisor.wait()

    # Then it stops at once, saying why, with no restart
    messages = [record.getMessage() for record in caplog.records]
    assert return_code == 1
    assert not any("restarted" in message for message in messages), messages
    assert [message for message in messages if "configuration is wrong" in message] == [
        "misconfigured exited with code 2: its configuration is wrong (see the line above or its log), "
        "which a restart cannot fix; stopping the others"]
