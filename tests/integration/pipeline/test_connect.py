"""Connect on real processes: a purchase on a connected account (``crossfill trigger --account``) reaches
the platform's Connect endpoint, the worker reads the session as that account, classifies and fulfils
it by that account's catalog, and the order records the account."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

from fulfillment.events import HANDLED_TYPES
from simulator.scenario import DEPLOY, PRO
from tests.support.processes import ROOT
from tests.support.stack import WEBHOOK_SECRET, Stack

SHOP = "acct_1PipelineShop"
#: The shop's own handler secret (Standard Webhooks' form): the target refuses the shop's calls under any other.
SHOP_SECRET = "whsec_" + base64.b64encode(b"the shop's own 32-byte secret!!!").decode()
STACK_HANDLER_SECRETS = {SHOP: SHOP_SECRET}


def STACK_CATALOG(target_url: str) -> str:  # noqa: N802 - the name conftest looks for
    # The platform's own products are only logged and cross-sell nothing; the shop's catalog has the
    # demo cross-sell and sends its items to the fulfillment target.
    return f"""
[defaults]
handler = "log"

[accounts.{SHOP}.handler]
secret = "{SHOP_SECRET}"

[accounts.{SHOP}.defaults]
handler = "http"
options = {{ url = "{target_url}" }}

[accounts.{SHOP}.products.{PRO}]
name = "The shop's Pro"
cross_sell = "{DEPLOY}"
"""


def trigger(stack: Stack, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "crossfill.cli", "trigger", "--cross-sell", "--json",
                           "--api-base", stack.env["STRIPE_API_BASE"], "--api-key", stack.env["STRIPE_API_KEY"], *args],
                          env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    bought: dict[str, object] = json.loads(done.stdout)
    return bought


def test_a_connected_accounts_purchase_is_fulfilled_as_that_account(stack: Stack) -> None:
    # Given the platform's Connect endpoint on the simulator (the same receiver, the same secret),
    stack.sim.post("/v1/webhook_endpoints", {"url": stack.receiver_url, "enabled_events": list(HANDLED_TYPES),
                                             "secret": WEBHOOK_SECRET, "connect": "true"})
    # when a buyer pays the connected shop for Pro and its cross-sell,
    bought = trigger(stack, "--account", SHOP)
    assert bought["account"] == SHOP
    session_id = str(bought["session"])
    order = stack.wait_order(session_id, "fulfilled")
    # then the order is the shop's, classified by the shop's catalog,
    assert order["account"] == SHOP
    assert [(item["product"], item["cross_sell"]) for item in order["items"]] == [(PRO, False), (DEPLOY, True)]
    # fulfilled by the shop's handler (the fulfillment system is told the account), each call signed
    # with the shop's own secret (the target answers 401 to any other, and checks Standard Webhooks'
    # signature with its library),
    effects = [stack.target.effects[key] for key in stack.keys_of(session_id)]
    assert [effect["order"]["account"] for effect in effects] == [SHOP, SHOP]
    assert stack.target.bad_signatures == 0
    # and the session was read under the shop's own rate limits.
    assert stack.redis.client().exists("crossfill:ratelimit:{test:" + SHOP + "}:global")


def test_the_platforms_own_purchase_keeps_the_default_catalog(stack: Stack) -> None:
    bought = trigger(stack)
    session_id = str(bought["session"])
    order = stack.wait_order(session_id, "fulfilled")
    assert "account" not in order
    # The default catalog offers no cross-sell and logs its items: nothing reached the target.
    assert [item["cross_sell"] for item in order["items"]] == [False, False]
    assert not any(key in stack.target.calls for key in stack.keys_of(session_id))


def test_reconcile_recovers_a_connected_accounts_purchase_whose_webhooks_were_lost(stack: Stack) -> None:
    # Given the Connect endpoint, and every webhook delivery lost on the way
    stack.sim.post("/v1/webhook_endpoints", {"url": stack.receiver_url, "enabled_events": list(HANDLED_TYPES),
                                             "secret": WEBHOOK_SECRET, "connect": "true"})
    stack.sim.post("/sim/faults", {"webhook_drop_rate": "1"})
    try:
        bought = trigger(stack, "--account", SHOP)
        session_id = str(bought["session"])
        # (the platform's own Events API does not list a connected account's events)
        assert stack.order(session_id) is None

        # When reconcile runs, listing each connected account's events and sessions as that account
        done = stack.cli("reconcile", "--json")
    finally:
        stack.sim.delete("/sim/faults")
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)

    # Then the shop's event was recorded and its order fulfilled as the shop's, by the shop's catalog
    assert report["events_recovered"] >= 1 and report["still_failing"] == 0
    order = stack.wait_order(session_id, "fulfilled")
    assert order["account"] == SHOP
    assert [(item["product"], item["cross_sell"]) for item in order["items"]] == [(PRO, False), (DEPLOY, True)]
    assert [stack.target.calls[key] for key in stack.keys_of(session_id)] == [1, 1]
