"""The Grafana dashboard the chart ships (files/dashboards/tollgate.json): valid PromQL on the
operator's own metric names, rendered into a ConfigMap for Grafana's sidecar. That every query
returns data from a live run's Prometheus is asserted in tests/runtime/test_live_replay.py."""

import json
import re
from typing import Any

import promql_parser
import yaml

from tests.chart.test_chart import CHART, render
from tollgate.runtime.telemetry import Telemetry

DASHBOARD = CHART / "files" / "dashboards" / "tollgate.json"


def expressions(namespace: str = ".*", rollout: str = ".*") -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, with the dashboard's variables filled in as
    Grafana would for one range of ten minutes."""
    dashboard = json.loads(DASHBOARD.read_text())
    filled = {"$namespace": namespace, "$rollout": rollout, "$__rate_interval": "1m",
              "$__range": "10m"}  # fmt: skip
    out = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in filled.items():
                expr = expr.replace(name, value)
            out.append((panel["title"], expr))
    return out


def test_every_query_parses_and_names_only_metrics_the_operator_serves() -> None:
    served = set()
    for family in Telemetry().registry.collect():
        served |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
    queries = expressions()
    assert len(queries) >= 9
    for title, expr in queries:
        promql_parser.parse(expr)  # raises on a syntax error
        names = set(re.findall(r"\btollgate_[a-z_]+", expr))
        assert names, title
        assert names <= served, f"{title}: {names - served}"


def test_the_dashboard_ships_in_a_configmap_for_grafana_s_sidecar() -> None:
    assert not [d for d in yaml.safe_load_all(render([])) if d and d["kind"] == "ConfigMap"]
    documents = yaml.safe_load_all(render(["dashboard.enabled=true"]))
    (configmap,) = [d for d in documents if d and d["kind"] == "ConfigMap"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped: dict[str, Any] = json.loads(configmap["data"]["tollgate.json"])
    assert shipped == json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in shipped["templating"]["list"]}
    assert {"datasource", "namespace", "rollout"} <= variables
