"""The receiver's task message equals what Celery's send_task writes to Redis (a contract with kombu).

The receiver pushes ``messaging.contract.task_message`` inside the inbox's Lua script instead of calling
``send_task``. If a Celery or kombu upgrade changes the wire format, this test fails first.
"""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fulfillment.settings import Settings
from messaging.contract import EVENTS_QUEUE, FULFILL_ITEM, FULFILLMENT_QUEUE, PROCESS_EVENT, task_message
from tests.support.processes import RedisServer
from worker.app import CrossfillCelery, make_celery

#: Fields that differ from message to message by design.
VARYING_HEADERS = ("id", "root_id", "ignore_result")
VARYING_PROPERTIES = ("correlation_id", "delivery_tag", "reply_to")
#: What crossfill adds to the envelope: when it queued the message (the queues' oldest-message age).
CROSSFILL_PROPERTIES = ("crossfill_sent_at",)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def app(redis_server: RedisServer) -> CrossfillCelery:
    redis_server.client().flushall()
    return make_celery(Settings(redis_url=redis_server.url))


def _steady(message: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in message["headers"].items() if k not in VARYING_HEADERS}
    properties = {k: v for k, v in message["properties"].items()
                  if k not in VARYING_PROPERTIES + CROSSFILL_PROPERTIES}
    return {**message, "headers": headers, "properties": properties}


def test_task_message_is_what_send_task_writes(app: CrossfillCelery, redis_server: RedisServer) -> None:
    # Given what Celery itself pushes for process_event("evt_1") on the events queue
    app.conf.result_backend = None
    app.send_task(PROCESS_EVENT, args=["evt_1"], queue=EVENTS_QUEUE, retry=False)
    client = redis_server.client()
    celerys = json.loads(client.lpop(EVENTS_QUEUE))  # type: ignore[arg-type]

    # When the receiver builds its own
    ours = json.loads(task_message(PROCESS_EVENT, ["evt_1"]))

    # Then they are the same message but for its ids
    assert _steady(ours) == _steady(celerys)
    assert base64.b64decode(ours["body"]) == base64.b64decode(celerys["body"])
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    assert ours["headers"]["ignore_result"] is True  # process_event keeps no result
    assert abs(ours["properties"]["crossfill_sent_at"] - time.time()) < 60


def test_each_message_has_its_own_ids(app: CrossfillCelery) -> None:
    first, second = (json.loads(task_message(PROCESS_EVENT, ["evt_1"])) for _ in range(2))
    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]


def test_fulfill_item_message_keeps_its_deterministic_id_and_its_result(app: CrossfillCelery,
                                                                       redis_server: RedisServer) -> None:
    task_id = "fulfill:cs_test_1:li_1"
    app.send_task(FULFILL_ITEM, args=["cs_test_1", "li_1"], queue=FULFILLMENT_QUEUE, task_id=task_id, retry=False)
    celerys = json.loads(redis_server.client().lpop(FULFILLMENT_QUEUE))  # type: ignore[arg-type]

    ours = json.loads(task_message(FULFILL_ITEM, ["cs_test_1", "li_1"], ignore_result=False,
                                   task_id=task_id))

    assert _steady(ours) == _steady(celerys)
    assert ours["headers"]["id"] == celerys["headers"]["id"] == task_id
    assert ours["headers"]["ignore_result"] is False  # a fulfillment system reads this result
