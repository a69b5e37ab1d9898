"""config/grafana-dashboard.json: it parses, and every query names a series syncd exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from syncd.status.prometheus import COUNTERS, GAUGES, PREFIX, Exposition

DASHBOARD = Path(__file__).resolve().parents[3] / "config" / "grafana-dashboard.json"


def _exported() -> set[str]:
    names = {PREFIX + family.name + "_total" for family in COUNTERS.values()}
    names |= {PREFIX + family.name for family in GAUGES.values()}
    text = Exposition().render({}, {}).decode("utf-8")
    names |= {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    return names


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_query_names_a_series_syncd_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = _exported()
    used = {
        name
        for expr in _expressions(dashboard)
        for name in re.findall(r"\b((?:syncd|process)_[a-z0-9_]+)", expr)
    }
    assert used, "no syncd series in the dashboard"
    assert used - exported == set()


def test_the_main_figures_are_on_it() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    text = " ".join(_expressions(dashboard))
    for series in (
        "syncd_queue_depth",
        "syncd_pushes_total",
        "syncd_errors_total",
        "syncd_http_rate_limited_total",
        "syncd_source_age_seconds",
        "syncd_rate_limit_remaining",
        "syncd_cycle_duration_seconds",
    ):
        assert series in text, series
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["title"] for panel in dashboard["panels"])
