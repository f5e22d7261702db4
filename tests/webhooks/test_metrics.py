"""/metrics: bounded labels, and an answer whatever the senders sent or the state holds."""
from __future__ import annotations

import os
from pathlib import Path

import fakeredis
import pytest
from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from fulfillment.events import HANDLED_TYPES
from fulfillment.store import KEY_PREFIX
from webhooks.metrics import OTHER_TYPE, OUTCOMES, ReceiverMetrics, StateCollector, type_label

QUEUES = ("events", "fulfillment")


def samples(text: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called *name* in an exposition, by their sorted labels."""
    return {tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text.decode("utf-8"))
            for sample in family.samples if sample.name == name}


def webhook_types(text: bytes) -> set[str]:
    return {dict(labels)["type"] for labels in samples(text, "crossfill_webhooks_total")}


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def state(server: fakeredis.FakeServer) -> StateCollector:
    return StateCollector(fakeredis.FakeRedis(server=server, decode_responses=True), QUEUES)


# --- bounded labels ------------------------------------------------------------------------------

@pytest.mark.parametrize("event_type", sorted(HANDLED_TYPES))
def test_a_handled_type_is_its_own_label(event_type: str) -> None:
    assert type_label(event_type) == event_type


@pytest.mark.parametrize("event_type", ["invoice.paid", "checkout.session", "CHECKOUT.SESSION.COMPLETED",
                                        "x" * 10_000, "invoice.\udfff", "\x00", "", None])
def test_any_other_type_is_other(event_type: str | None) -> None:
    assert type_label(event_type) == OTHER_TYPE


def test_a_thousand_types_make_one_label_and_metrics_still_render() -> None:
    metrics = ReceiverMetrics()

    for number in range(1000):
        metrics.observe(f"weird.type_{number}\udfff", "ignored", 0.001)
    metrics.observe("checkout.session.completed", "accepted", 0.001)

    text = metrics.render()
    assert webhook_types(text) == {OTHER_TYPE, "checkout.session.completed"}
    assert samples(text, "crossfill_webhooks_total")[(("outcome", "ignored"), ("type", OTHER_TYPE))] == 1000


def test_an_outcome_outside_the_set_is_a_bug() -> None:
    with pytest.raises(ValueError, match="outcome must be one of"):
        ReceiverMetrics().observe("checkout.session.completed", "weird\udfff", 0.1)
    assert "accepted" in OUTCOMES


# --- pipeline state: unreadable shows as crossfill_state_up 0 -----------------------------------------

def test_state_is_read_from_redis(state: StateCollector, server: fakeredis.FakeServer) -> None:
    fakeredis.FakeRedis(server=server).lpush("events", "m1", "m2")

    text = ReceiverMetrics(state).render()

    assert samples(text, "crossfill_state_up") == {(): 1.0}
    assert samples(text, "crossfill_queue_depth")[(("queue", "events"),)] == 2


def test_redis_down_is_state_up_0(state: StateCollector, server: fakeredis.FakeServer) -> None:
    server.connected = False

    text = ReceiverMetrics(state).render()

    assert samples(text, "crossfill_state_up") == {(): 0.0}
    assert samples(text, "crossfill_queue_depth") == {}


@pytest.mark.parametrize(("name", "count"), [
    (b"price_mismatch", b"not-a-number"),
    (b"price_mismatch", b"1.5"),
    (b"\xff\xfe", b"1"),
])
def test_a_bad_value_in_redis_is_state_up_0(state: StateCollector, server: fakeredis.FakeServer,
                                             name: bytes, count: bytes) -> None:
    fakeredis.FakeRedis(server=server).hset(f"{KEY_PREFIX}anomalies", name, count)

    text = ReceiverMetrics(state).render()

    assert samples(text, "crossfill_state_up") == {(): 0.0}


# --- gunicorn's multiprocess files --------------------------------------------------------------------

def write_counter_file(directory: Path, pid: int, counts: dict[tuple[str, str], float]) -> Path:
    """A worker's counter file as prometheus-client writes it, for crossfill_webhooks_total."""
    path = directory / f"counter_{pid}.db"
    store = MmapedDict(str(path))
    for (event_type, outcome), value in counts.items():
        key = mmap_key("crossfill_webhooks", "crossfill_webhooks_total", ["type", "outcome"],
                       [event_type, outcome], "Webhook deliveries by event type and outcome")
        store.write_value(key, value, 0.0)
    store.close()
    return path


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_files_of_all_workers_are_summed(metrics_dir: Path) -> None:
    write_counter_file(metrics_dir, 1, {("checkout.session.completed", "accepted"): 2})
    write_counter_file(metrics_dir, 2, {("checkout.session.completed", "accepted"): 3, ("other", "ignored"): 1})

    text = ReceiverMetrics().render()

    counts = samples(text, "crossfill_webhooks_total")
    assert counts[(("outcome", "accepted"), ("type", "checkout.session.completed"))] == 5
    assert counts[(("outcome", "ignored"), ("type", "other"))] == 1


def test_a_label_that_is_not_text_is_left_out_not_a_failure(metrics_dir: Path) -> None:
    # Given a file holding the label that once broke every scrape (a lone surrogate from a sender)
    write_counter_file(metrics_dir, 1, {("invoice.\udfff", "ignored"): 1, ("other", "ignored"): 4})

    text = ReceiverMetrics().render()

    assert samples(text, "crossfill_webhooks_total") == {(("outcome", "ignored"), ("type", "other")): 4}


@pytest.mark.parametrize("damage", [b"\xff" * 64, b"", b"\x10\x00\x00\x00" + b"{" * 20])
def test_a_torn_file_is_left_out_and_the_others_are_shown(metrics_dir: Path, damage: bytes) -> None:
    write_counter_file(metrics_dir, 1, {("other", "ignored"): 4})
    (metrics_dir / "counter_2.db").write_bytes(damage)

    text = ReceiverMetrics().render()

    assert samples(text, "crossfill_webhooks_total") == {(("outcome", "ignored"), ("type", "other")): 4}


def test_observe_then_render_through_the_files(metrics_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the value store gunicorn's workers use (post_fork picks it once the directory is set)
    monkeypatch.setattr(values, "ValueClass", values.get_value_class())
    metrics = ReceiverMetrics()

    metrics.observe("invoice.\udfff", "ignored", 0.01)
    metrics.observe("checkout.session.expired", "accepted", 0.01)

    text = metrics.render()
    assert webhook_types(text) == {OTHER_TYPE, "checkout.session.expired"}
    assert sorted(path.name for path in metrics_dir.iterdir()) == [f"counter_{os.getpid()}.db",
                                                                  f"histogram_{os.getpid()}.db"]
