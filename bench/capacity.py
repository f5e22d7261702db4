"""Redis bytes per order and per event, on a real redis-server: the capacity table in BENCHMARKS.md.

Each order is what the pipeline writes for a paid Checkout Session of 3 line items: the event in the
inbox (Stripe's own checkout.session fixture as the body, as the receiver keeps it), the order and
its items in the ledger (opened, claimed, results recorded), with crossfill's own code. Measured
twice: the sum of MEMORY USAGE over every key, and INFO used_memory before and after.

    .venv/bin/python bench/capacity.py [--orders 2000]
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from crossfill.embedded import free_port, redis_argv
from fulfillment.catalog import load_catalog
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.orders import classify_items, order_summary
from fulfillment.schemas import parse_line_items, parse_session
from messaging.contract import EVENTS_QUEUE, PROCESS_EVENT, task_message

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stripe" / "fixtures3"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=2000)
    count = parser.parse_args().orders
    session_doc = json.loads((FIXTURES / "checkout.session.json").read_text())
    item_doc = json.loads((FIXTURES / "item.json").read_text())
    catalog = load_catalog(None)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen(redis_argv(Path(tmp), port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port, decode_responses=True)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            inbox, ledger = Inbox(client), Ledger(client)
            client.delete(EVENTS_QUEUE)
            base = int(client.info("memory")["used_memory"])
            for number in range(count):
                sid = f"cs_test_a1{number:012d}bench"
                session = copy.deepcopy(session_doc) | {"id": sid, "payment_status": "paid", "status": "complete"}
                event = {"id": f"evt_1Bench{number:014d}", "object": "event", "api_version": "2026-10-28.endive",
                         "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
                         "type": "checkout.session.completed", "data": {"object": session},
                         "request": {"id": None, "idempotency_key": None}}
                inbox.record(event["id"], event["type"], sid, json.dumps(event), queue=EVENTS_QUEUE,
                             message=task_message(PROCESS_EVENT, [event["id"]]))
                client.rpop(EVENTS_QUEUE)  # a worker took it
                inbox.move(event["id"], "processing")
                items_doc = {"object": "list", "has_more": False, "data": [
                    copy.deepcopy(item_doc) | {"id": f"li_{number:010d}{n}"} for n in range(3)]}
                parsed = parse_session(session)
                line_items, _ = parse_line_items(items_doc)
                rows = classify_items(parsed, line_items, catalog)
                _, open_ids = ledger.open_order(sid, order_summary(parsed, rows), rows)
                for item_id in open_ids:
                    claim = ledger.claim_item(sid, item_id, lease_s=60)
                    ledger.record_result(sid, item_id, claim.token, {"status": 200, "reference": f"ful_{item_id}"})
                inbox.move(event["id"], "processed")
            used = int(client.info("memory")["used_memory"]) - base
            event_bytes = order_bytes = 0
            for key in client.scan_iter("crossfill:*", count=1000):
                size = int(client.memory_usage(key, samples=0) or 0)
                if key.startswith("crossfill:event:"):
                    event_bytes += size
                elif key.startswith(("crossfill:order:", "crossfill:item:")):
                    order_bytes += size
            indexes = sum(int(client.memory_usage(key, samples=0) or 0)
                          for key in client.scan_iter("crossfill:*", count=1000)
                          if key.startswith(("crossfill:inbox:", "crossfill:orders:")))
            version = client.info("server")["redis_version"]
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"redis {version}, {platform.machine()} {platform.processor() or ''}, {count} orders of 3 items")
    print(f"per event (inbox hash):           {event_bytes / count:8.0f} B  (MEMORY USAGE)")
    print(f"per order + 3 items (ledger):     {order_bytes / count:8.0f} B  (MEMORY USAGE)")
    print(f"per order, indexes:               {indexes / count:8.0f} B  (MEMORY USAGE)")
    print(f"per order, everything:            {used / count:8.0f} B  (INFO used_memory delta)")


if __name__ == "__main__":
    main()
