"""deploy/: the alert rules and the Grafana dashboard name only metrics crossfill exports.

The exported names are read from a real /metrics exposition (webhooks/metrics.py) over a fakeredis
holding every kind of state, so a renamed metric fails here instead of silencing an alert.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fulfillment.catalog import parse_catalog
from fulfillment.deadletters import DeadLetters
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.liveness import RECONCILE_LAST_SUCCESS, beat
from fulfillment.records import Order, OrderItem
from fulfillment.report import CrossSellReport
from fulfillment.stats import STRIPE_API_CALLS, STRIPE_RATE_LIMITED, Stats
from messaging.contract import dead_letter_id
from tests.support.console import paid_order
from webhooks.metrics import ReceiverMetrics, StateCollector
from webhooks.metrics_server import metrics_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "crossfill.json"
METRIC = re.compile(r"\bcrossfill_[a-z0-9_]+\b")
#: What the issue asks the rules to watch, by the metric each one reads.
REQUIRED = {"crossfill_dead_letters", "crossfill_queue_depth", "crossfill_workers_alive",
            "crossfill_reconcile_last_success_timestamp_seconds", "crossfill_webhooks_total",
            "crossfill_webhook_ack_seconds_bucket", "crossfill_oldest_unfulfilled_seconds"}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name /metrics shows once the pipeline has state of every kind."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    ledger = Ledger(client)
    paid_order(ledger, "cs_test_m", cross_sell=True)
    CrossSellReport(client, parse_catalog({"products": {"prod_pro": {"cross_sell": "prod_deploy"}}})).drain()
    client.hincrby("crossfill:anomalies", "currency", 1)
    DeadLetters(client).add(dead_letter_id("fulfill_item", ["cs_test_m", "li_9"]), "fulfill_item", ["cs_test_m", "li_9"], "boom", reason="permanent", attempts=1)
    Inbox(client).record("evt_m", "checkout.session.completed", "cs_test_m", "{}", queue="events", message="m")
    beat(client, "celery@host")
    Stats(client).incr(STRIPE_API_CALLS, "GET /v1/checkout/sessions/{id}")
    Stats(client).incr(STRIPE_RATE_LIMITED, "GET /v1/checkout/sessions/{id}")
    client.set(RECONCILE_LAST_SUCCESS, str(time.time()))
    counters = ReceiverMetrics()
    counters.observe("checkout.session.completed", "accepted", 0.002)
    # Scraped as Prometheus does: GET /metrics of the internal metrics app (CROSSFILL_METRICS_PORT)
    scrape = metrics_app(counters, StateCollector(client, ("events", "fulfillment"))).test_client().get("/metrics")
    assert scrape.status_code == 200
    text = scrape.get_data(as_text=True)
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_the_exposition_holds_the_metrics_the_rules_need(exported: set[str]) -> None:
    assert REQUIRED <= exported
    assert {"crossfill_cross_sell_paid_orders_total", "crossfill_cross_sell_attached_orders_total",
            "crossfill_cross_sell_revenue_minor_units_total"} <= exported
    assert {"crossfill_fulfillment_lag_seconds_bucket", "crossfill_fulfillment_lag_seconds_sum",
            "crossfill_oldest_unfulfilled_seconds", "crossfill_queue_oldest_message_seconds"} <= exported


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_alert_names_only_exported_metrics(rule: dict[str, Any], exported: set[str]) -> None:
    named = set(METRIC.findall(rule["expr"]))

    assert named, f"{rule['alert']} watches no crossfill metric"
    assert named <= exported, f"{rule['alert']}: not exported: {sorted(named - exported)}"
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_rules_cover_what_ops_asked_for() -> None:
    named = {name for rule in rules() for name in METRIC.findall(rule["expr"])}

    assert REQUIRED <= named


@pytest.mark.parametrize("expr", dashboard_expressions())
def test_every_dashboard_panel_names_only_exported_metrics(expr: str, exported: set[str]) -> None:
    named = set(METRIC.findall(expr))

    assert named and named <= exported, f"not exported: {sorted(named - exported)}"


def test_the_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        box = panel["gridPos"]
        cells = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert box["x"] + box["w"] <= 24 and not cells & taken, panel["title"]
        taken |= cells


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60,
                            check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


# --- the lateness alert, on a real exposition -------------------------------------------------------------

LATE_ALERT = "CrossfillFulfillmentLate"


def exposition_with_an_order_paid(seconds_ago: float) -> str:
    """/metrics as the collector renders it (whichever port serves it) with one paid order, items open."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    Ledger(client).open_order("cs_test_late", Order(session_id="cs_test_late"), [OrderItem(id="li_1"), OrderItem(id="li_2")],
                              paid_at=time.time() - seconds_ago)
    return ReceiverMetrics(StateCollector(client, ("events", "fulfillment"))).render().decode()


def fires(exposition: str, tmp_path: Path) -> bool:
    """Whether the lateness alert fires after 3 minutes of scrapes showing *exposition*, by promtool
    (``promtool test rules`` on series taken from the exposition)."""
    (rule,) = [rule for rule in rules() if rule["alert"] == LATE_ALERT]
    named = set(METRIC.findall(rule["expr"]))
    series = [{"series": sample.name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())) + "}",
               "values": f"{sample.value}x10"}
              for family in text_string_to_metric_families(exposition) for sample in family.samples
              if sample.name in named]
    assert series, f"the exposition has none of {sorted(named)}"
    firing = 'ALERTS{alertname="%s",alertstate="firing",severity="%s"}' % (LATE_ALERT, rule["labels"]["severity"])
    check = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": f'ALERTS{{alertname="{LATE_ALERT}"}}', "eval_time": "3m",
                               "exp_samples": [{"labels": firing, "value": 1}]}]}]}
    path = tmp_path / "late_test.yml"
    path.write_text(yaml.safe_dump(check))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0 or "got: nil" in result.stderr, result.stdout + result.stderr
    return result.returncode == 0


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_an_order_paid_ten_minutes_ago_and_not_fulfilled_fires_the_lateness_alert(tmp_path: Path) -> None:
    late = exposition_with_an_order_paid(600)
    on_time = exposition_with_an_order_paid(5)

    assert fires(late, tmp_path)
    assert not fires(on_time, tmp_path)
