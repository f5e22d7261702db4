"""Every audited action is also one structured line in the console process's own log (who, role,
action, target, account, outcome), on a real ``crossfill console``."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fulfillment.ledger import Ledger
from tests.support.console import TOKENS, LiveConsole, csrf_of, paid_order, running_console, sign_in
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration
MERCHANT = "Mx7-merchant-token-0123456789abcdefghij"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveConsole]:
    with running_console(tmp_path, f"op:operator:{TOKENS['operator']},shop:merchant:{MERCHANT}:acct_Shop1") as console:
        yield console


def audit_lines(output: str) -> list[dict[str, str]]:
    return [json.loads(line.split(" audit ", 1)[1]) for line in output.splitlines() if " audit {" in line]


def test_sign_in_sign_out_reconcile_replay_and_fulfil_are_log_lines(live: LiveConsole) -> None:
    # Given an order of a connected account (its session already paid and fulfilled)
    paid_order(Ledger(live.redis.client()), "cs_test_audited", account="acct_Shop1")
    operator = {"Authorization": f"Bearer {TOKENS['operator']}"}

    # When an operator signs in and out, reconciles and replays, and a merchant fulfils through the API
    browser = sign_in(live.url, TOKENS["operator"])
    page = browser.get(f"{live.url}/", timeout=10)
    browser.post(f"{live.url}/signout", data={"csrf": csrf_of(page.text)}, timeout=10)
    assert requests.post(f"{live.url}/api/v1/reconcile", headers=operator, timeout=10).status_code == 202
    assert requests.post(f"{live.url}/api/v1/dead-letters/fulfill:cs_test_x:li_1/replay", headers=operator,
                         timeout=10).status_code == 404
    fulfil = requests.post(f"{live.url}/api/v1/orders/cs_test_audited/fulfill",
                           headers={"Authorization": f"Bearer {MERCHANT}"}, timeout=10)
    assert fulfil.status_code == 503  # the session is read again from Stripe, unreachable here

    # Then each is one structured line of the console's log, with who, role, action, target, account, outcome
    wanted = {"sign-in", "sign-out", "reconcile", "fulfil"}
    wait_until(lambda: wanted <= {line["action"] for line in audit_lines(live.proc.output())}, timeout=10,
               what="the audit lines in the console's log")
    lines = audit_lines(live.proc.output())
    assert all(set(line) == {"who", "role", "action", "target", "account", "outcome"} for line in lines)
    by_action = {line["action"]: line for line in lines}
    assert (by_action["sign-in"]["who"], by_action["sign-in"]["role"], by_action["sign-in"]["outcome"]) == (
        "op", "operator", "ok")
    assert by_action["sign-out"]["who"] == "op"
    assert by_action["reconcile"]["outcome"].startswith("queued ")
    assert (by_action["fulfil"]["who"], by_action["fulfil"]["target"], by_action["fulfil"]["outcome"]) == (
        "shop", "cs_test_audited", "refused: 503 unavailable")
    assert TOKENS["operator"] not in live.proc.output() and MERCHANT not in live.proc.output()
