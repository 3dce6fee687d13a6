"""deploy/prometheus and deploy/grafana hold: the alert rules pass `promtool check rules`
and their unit tests (`promtool test rules`), every alert is tested firing and quiet, the
dashboards' queries are valid PromQL, and every metric the rules and dashboards name is
one a LinkFlow process exports (tests/e2e/test_metrics.py scrapes those after real runs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from linkflow.observability.metrics import HttpMetrics
from linkflow.observability.worker_metrics import SchedulerMetrics, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
NOT_OURS = {"up"}
"""Series Prometheus makes itself (a target's scrape result), not a LinkFlow process."""
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/ensure-services.sh installs it (prometheus)"
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exported() -> set[str]:
    """Every sample name the api's, the worker's and the scheduler's registries export
    (serve's holds all three), from the metric families they declare."""
    registry = CollectorRegistry()
    HttpMetrics(registry)
    worker = WorkerMetrics(registry)
    worker.leases(lambda: (0, 0))
    scheduler = SchedulerMetrics(registry, writer=False)
    scheduler.ticks(lambda: 0, lambda: 0)
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    return names


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in GRAFANA.glob("*.json")}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    return [(f"{name}: {panel['title']}", target["expr"])
            for name, dashboard in dashboards().items() for panel in panels(dashboard)
            for target in panel.get("targets", [])]  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series an expression selects: identifiers that are neither functions,
    keywords, label names nor inside strings or a `by (...)` clause."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", text))
    keywords = {"by", "without", "on", "ignoring", "bool", "and", "or", "unless", "offset",
                "group_left", "group_right", "le", "inf", "nan"}  # fmt: skip
    return {word for word in words if word.lower() not in keywords}


def test_the_alert_rules_pass_promtools_check_and_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")
    promtool("check", "config", "prometheus.yml")


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} never quiet"
    names = {rule["alert"] for rule in rules()}
    assert names >= {"LinkFlowAPIDown", "LinkFlowAPIErrors", "LinkFlowAPILatencyHigh",
                     "LinkFlowExecutionFailureRate", "LinkFlowQueueHighPriorityWaiting",
                     "LinkFlowNoSchedulerLeader", "LinkFlowDeadLettersGrowing"}  # fmt: skip


def test_every_metric_of_the_rules_and_dashboards_is_exported_by_linkflow() -> None:
    known = exported() | NOT_OURS
    queries = [(rule["alert"], rule["expr"]) for rule in rules()] + dashboard_queries()
    used = set()
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= known, f"{where}: {sorted(names - known)} is exported by nothing"
        used |= names
    # Nothing an operator would look for is left off the dashboards.
    for family in ("linkflow_executions_started_total", "linkflow_queue_oldest_age_seconds",
                   "linkflow_node_duration_seconds_bucket", "linkflow_writer_batch_ops_bucket",
                   "linkflow_scheduler_ticks_missed_total", "linkflow_live_connections",
                   "linkflow_lease_losses_total"):  # fmt: skip
        assert family in used, f"no dashboard shows {family}"


def test_the_dashboards_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query, Grafana's variables put in, as a recording rule for promtool to parse."""
    records = []
    for n, (_, expr) in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        records.append({"record": f"dashboard:query_{n}", "expr": expr})
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]})
    )
    assert "SUCCESS" in promtool("check", "rules", "queries.yml", cwd=tmp_path)


def test_the_dashboards_load_in_grafana_as_provisioned() -> None:
    """Unique uids and panel ids, every query on the `datasource` variable."""
    uids = [dashboard["uid"] for dashboard in dashboards().values()]
    assert len(uids) == len(set(uids)) >= 2
    for name, dashboard in dashboards().items():
        (variable,) = dashboard["templating"]["list"]
        assert (variable["name"], variable["type"], variable["query"]) == \
            ("datasource", "datasource", "prometheus")  # fmt: skip
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), name
        for panel in panels(dashboard):
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])
                assert panel["targets"], (name, panel["title"])
