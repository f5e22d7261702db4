"""The simulator of the flash-sale benchmarks, with the sale's purchases already paid.

    python bench/flash_sim.py --port P --catalog C --purchases 3000 --out events.jsonl [--rate-limits live]

Creating 3,000 Checkout sessions through ``/v1`` would take two minutes under Stripe's 25 requests/s
per endpoint (``POST /v1/checkout/sessions`` is one endpoint), and paying them at 300/s through
``/sim`` costs the simulator more CPU than the two cores have beside the pipeline. So this process
builds them in its own store before it serves: each buyer's session (1–4 line items: the primary
product, then extras), the cross-sell added for every other buyer, the payment. No webhook endpoint
is registered, so nothing is delivered: the ``checkout.session.completed`` events are written to
*--out*, one JSON body a line (pretty-printed, as Stripe sends them), for the benchmark to sign and
post at the sale's pace. Then it serves ``/v1`` and ``/sim`` with Stripe's rate limits enforced, and
the workers read the very sessions the events name.

It prints ``ready`` once the file is written and the port is open.
"""
from __future__ import annotations

import argparse
import json
import random
import signal
import sys
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fulfillment.catalog import load_catalog  # noqa: E402
from simulator.config import SimConfig  # noqa: E402
from simulator.ratelimit import MODES  # noqa: E402
from simulator.server import SimServer  # noqa: E402
from simulator.store import LineItemSpec  # noqa: E402

PRO = "prod_flash_pro"  #: every buyer's first item; it offers DEPLOY as its cross-sell
DEPLOY = "prod_flash_deploy"  #: the cross-sell
EXTRAS = tuple(f"prod_flash_extra_{n}" for n in range(1, 4))  #: items 2..4 of a bigger order


def catalog_toml(sink_url: str) -> str:
    """The catalog both the simulator and the workers read: PRO cross-sells DEPLOY; every item to *sink_url*."""
    products = "\n".join(f'[products.{pid}]\nname = "{pid}"\n' for pid in (DEPLOY, *EXTRAS))
    return (f'[account]\ndefault_tax_behavior = "exclusive"\n\n[defaults]\nhandler = "http"\n'
            f'options = {{ url = "{sink_url}" }}\n\n[products.{PRO}]\nname = "{PRO}"\ncross_sell = "{DEPLOY}"\n\n'
            f"{products}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--purchases", type=int, default=3000)
    parser.add_argument("--items", default="1-4", help="line items per purchase before the cross-sell: N or LO-HI")
    parser.add_argument("--cross-sell-every", type=int, default=2, help="every Nth buyer adds the cross-sell")
    parser.add_argument("--cross-sell-share", type=float,
                        help="instead of --cross-sell-every: each buyer adds the cross-sell with this probability")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--rate-limits", default="live", choices=sorted(MODES))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    low, _, high = args.items.partition("-")
    lo, hi = int(low), int(high or low)

    server = SimServer(SimConfig(catalog=load_catalog(args.catalog), rate_limits=MODES[args.rate_limits]),
                       port=args.port)
    store = server.simulator.store
    prices = {}
    for n, pid in enumerate((PRO, DEPLOY, *EXTRAS)):
        store.create_product(name=pid, product_id=pid)
        prices[pid] = store.create_price(product=pid, currency="usd", unit_amount=1000 + 100 * n,
                                         tax_behavior="exclusive")["id"]
    rng = random.Random(args.seed)
    with args.out.open("w", encoding="utf-8") as out:
        for n in range(args.purchases):
            products = [PRO, *EXTRAS[: rng.randint(lo, hi) - 1]]
            session = store.create_session(mode="payment", base_url=f"http://127.0.0.1:{args.port}",
                                           line_items=[LineItemSpec(prices[pid], 1) for pid in products],
                                           success_url="https://shop.example/thanks")
            adds = rng.random() < args.cross_sell_share if args.cross_sell_share is not None \
                else n % args.cross_sell_every == 0
            if adds:
                store.add_cross_sell(session["id"])
            store.complete_session(session["id"], "paid")
            event = store.events[-1]
            assert event["type"] == "checkout.session.completed" and event["data"]["object"]["id"] == session["id"]
            items = [item.id for item in store.sessions[session["id"]].line_items]
            out.write(json.dumps({"session": session["id"], "line_items": items,
                                  "body": json.dumps(event, indent=2)}))
            out.write("\n")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
