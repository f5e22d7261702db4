"""A dead consumer's messages go back at once; a live one's (its countdown retries too) stay where they are.

The restore script on fakeredis, then kombu's own Redis channel, patched as workers run it
(``harden_kombu_redis``), on a real redis-server: what it takes is recorded under its connection's
owner, an ack forgets it, and once the owner stops beating its messages are delivered again.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import fakeredis
import pytest
import redis
from kombu import Connection, Exchange, Queue

from fulfillment.leases import LeaseKeeper
from fulfillment.ledger import BUSY, CLAIMED, Ledger
from fulfillment.records import Order, OrderItem
from tests.support.processes import RedisServer
from worker.broker import harden_kombu_redis
from worker.redelivery import OWNERS, UNACKED, UNACKED_INDEX, beat, entry, held_by, owner_key, restore_dead

T0 = 1_800_000_000.0


@pytest.fixture
def fake() -> Iterator[redis.Redis]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


def hold(client: redis.Redis, owner: str, tag: str, queue: str, message: str, *, at: float) -> None:
    """What a patched kombu writes when *owner* takes *message* from *queue*."""
    client.zadd(UNACKED_INDEX, {tag: at})
    client.hset(UNACKED, tag, json.dumps([json.loads(message), "", queue]))
    client.hset(owner_key(owner), tag, entry([queue], message))
    beat(client, owner, now=at)


def test_a_dead_owners_messages_go_back_and_a_live_owners_stay(fake: redis.Redis) -> None:
    # Given a consumer silent for 30 s holding two messages (one acked meanwhile), and a live one
    hold(fake, "dead", "t1", "fulfillment", '{"m": 1}', at=T0 - 30)
    hold(fake, "dead", "t2", "events", '{"m": 2}', at=T0 - 30)
    fake.hdel(UNACKED, "t2")  # acknowledged: nothing to give back
    hold(fake, "alive", "t3", "fulfillment", '{"m": 3, "eta": "in 200 s"}', at=T0 - 30)
    beat(fake, "alive", now=T0 - 1)

    # When a worker or the sweeper looks (20 s of silence is death)
    restored = restore_dead(fake, now=T0, dead_after=20)

    # Then the dead one's message is back where BRPOP takes next, and kombu forgot it
    assert restored == 1
    assert fake.lrange("fulfillment", 0, -1) == ['{"m": 1}']
    assert fake.llen("events") == 0
    assert not fake.hexists(UNACKED, "t1") and fake.zscore(UNACKED_INDEX, "t1") is None
    assert not fake.exists(owner_key("dead")) and fake.zscore(OWNERS, "dead") is None
    # And the live one's held message (a countdown retry) is untouched
    assert fake.hexists(UNACKED, "t3") and held_by(fake, "alive") == {"t3": '{"m": 3, "eta": "in 200 s"}'}
    assert restore_dead(fake, now=T0, dead_after=20) == 0


def test_an_owner_that_beats_again_is_not_restored(fake: redis.Redis) -> None:
    hold(fake, "slow", "t1", "fulfillment", '{"m": 1}', at=T0 - 30)
    beat(fake, "slow", now=T0)

    assert restore_dead(fake, now=T0, dead_after=20) == 0
    assert fake.hexists(UNACKED, "t1") and fake.llen("fulfillment") == 0


# --- kombu's channel, as a worker runs it -------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    harden_kombu_redis()
    redis_server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield redis_server
    redis_server.stop()


def test_kombu_records_the_owner_forgets_on_ack_and_a_dead_owners_message_is_delivered_again(
        server: RedisServer) -> None:
    client = server.client()
    client.flushall()
    queue = Queue("fulfillment", Exchange("fulfillment"), routing_key="fulfillment")
    with Connection(server.url, transport_options={"visibility_timeout": 3600}) as connection:
        producer = connection.Producer()
        for number in (1, 2):
            producer.publish({"n": number}, exchange=queue.exchange, routing_key="fulfillment", declare=[queue])
        channel = connection.channel()
        first, second = (queue(channel).get(no_ack=False) for _ in range(2))
        assert first is not None and second is not None
        (owner,) = [name for name in client.zrange(OWNERS, 0, -1)]
        assert set(held_by(client, owner)) == {first.delivery_tag, second.delivery_tag}

        # An ack forgets the message in kombu's hash and in the owner's
        first.ack()
        assert set(held_by(client, owner)) == {second.delivery_tag}
        assert client.hkeys(UNACKED) == [second.delivery_tag]

        # When the owner is silent (its process killed: it holds the second message forever)
        restored = restore_dead(client, now=time.time() + 60, dead_after=20)

    # Then another consumer gets that message again, marked redelivered, and nothing is left unacked
    assert restored == 1
    with Connection(server.url) as connection:
        again = queue(connection.channel()).get(no_ack=True)
    assert again is not None and again.payload == {"n": 2} and again.delivery_info["redelivered"] is True
    assert client.hlen(UNACKED) == 0 and client.zcard(UNACKED_INDEX) == 0


# --- item leases, renewed while the handler runs ------------------------------------------------------

def test_a_held_lease_is_renewed_and_a_released_one_expires(fake: redis.Redis) -> None:
    ledger = Ledger(fake)
    ledger.open_order("cs_1", Order(session_id="cs_1"), [OrderItem(id="li_1"), OrderItem(id="li_2")])
    running = ledger.claim_item("cs_1", "li_1", lease_s=3)
    dead = ledger.claim_item("cs_1", "li_2", lease_s=3)
    keeper = LeaseKeeper(ledger, lease_s=3)

    with keeper.held("cs_1", "li_1", running.token):
        time.sleep(2)
        assert keeper.renew_now() == 0
        time.sleep(2)  # past the first lease: only the renewal keeps it
        assert ledger.claim_item("cs_1", "li_1", lease_s=3).outcome == BUSY
        assert ledger.claim_item("cs_1", "li_2", lease_s=3).outcome == CLAIMED  # nobody renewed it
    assert running.outcome == dead.outcome == CLAIMED
