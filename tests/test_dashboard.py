"""The Grafana dashboard the chart ships (charts/ripple/dashboards/ripple.json) queries only series Ripple's code
defines: every metric name in every PromQL expression is one that the registry holds once all of ripple's modules
are imported, and every label an expression filters or groups by is one of its metrics' labels (or one that
Prometheus adds to every target). A renamed metric or label fails here, not on someone's empty panel."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import ripple

DASHBOARD = Path(__file__).resolve().parents[1] / "charts" / "ripple" / "dashboards" / "ripple.json"
TARGET_LABELS = {"instance", "job", "namespace", "pod", "service", "endpoint", "container"}
"""What Prometheus (a ServiceMonitor's or the pod annotations' scrape config) adds to every series."""
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",),
            "summary": ("_count", "_sum", "")}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def ripple_metrics() -> dict[str, set[str]]:
    """Every sample name Ripple's metrics expose, with the labels it carries (``le`` for buckets)."""
    for info in pkgutil.walk_packages(ripple.__path__, "ripple."):
        if info.name != "ripple.__main__":
            importlib.import_module(info.name)
    found: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # the registry's own map: nothing public lists collectors
        if not isinstance(collector, MetricWrapperBase) or not collector._name.startswith("ripple_"):
            continue
        for suffix in SUFFIXES[collector._type]:
            labels = set(collector._labelnames) | ({"le"} if suffix == "_bucket" else set())
            found[collector._name.removesuffix("_total") + suffix if suffix else collector._name] = labels
    return found


def expressions() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard, rows' nested panels included."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(dashboard["panels"])
    found = []
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels") or [])
        found += [(panel["title"], target["expr"]) for target in panel.get("targets") or [] if target.get("expr")]
    return found


def parse(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) of a PromQL expression: enough of PromQL for what dashboards write."""
    labels: set[str] = set()
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and strings say nothing
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", " ", text)
    for grouping in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels |= {name.strip() for name in grouping.split(",") if name.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors, $__rate_interval
    names = set()
    for match in re.finditer(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\b(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word in PROMQL_WORDS or re.fullmatch(r"[0-9.eE+-]+", word):
            continue  # a function or aggregation, a keyword
        names.add(word)
    return names, labels


def test_the_promql_reader_finds_names_and_labels():
    names, labels = parse('histogram_quantile(0.99, sum by (kind, le) (rate(ripple_x_bucket{a="b}",c!~"d"}[5m])))'
                          ' / on (pod) group_left max(ripple_y) offset 5m')
    assert names == {"ripple_x_bucket", "ripple_y"}
    assert labels == {"kind", "le", "a", "c", "pod"}


def test_every_panel_has_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel.get("targets"), panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]


@pytest.mark.parametrize(("title", "expr"), expressions(), ids=[f"{t}:{e[:40]}" for t, e in expressions()])
def test_every_query_uses_metrics_and_labels_that_exist(title: str, expr: str):
    metrics = ripple_metrics()
    names, labels = parse(expr)
    assert names, f"{title}: no metric in {expr!r}"
    unknown = names - metrics.keys()
    assert not unknown, f"{title}: {sorted(unknown)} are not Ripple metrics (known: {sorted(metrics)})"
    offered = set().union(*(metrics[name] for name in names)) | TARGET_LABELS
    assert labels <= offered, f"{title}: labels {sorted(labels - offered)} are on none of {sorted(names)}"


def test_the_dashboard_covers_what_an_operator_watches():
    used = set().union(*(parse(expr)[0] for _, expr in expressions()))
    assert {
        "ripple_ingress_events_stored_total", "ripple_ingress_requests_total", "ripple_deliveries_total",
        "ripple_delivery_seconds_bucket", "ripple_function_pending_events", "ripple_function_replicas",
        "ripple_cold_starts_total", "ripple_source_events_total", "ripple_operator_reconciles_total",
        "ripple_operator_reconcile_seconds_bucket", "ripple_operator_objects",
        "ripple_operator_admission_reviews_total", "ripple_operator_leader",
    } <= used
