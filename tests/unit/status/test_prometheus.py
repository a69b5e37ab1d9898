"""/metrics as Prometheus reads it: HELP and TYPE on every family, base units, `_total`
counters present from the start, and a catalogue that covers every counter syncd counts."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from syncd.status.metrics import Metrics, series_name
from syncd.status.prometheus import (
    COUNTERS,
    GAUGES,
    Exposition,
    families,
    parse_series,
    zero_series,
)

SYNCD = Path(__file__).resolve().parents[3] / "syncd"


def _scrape(counters: dict[str, int], gauges: dict[str, float]) -> dict[str, object]:
    text = Exposition().render(counters, gauges).decode("utf-8")
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(family: object) -> list[Sample]:
    return list(family.samples)  # type: ignore[attr-defined]


def test_every_family_has_help_and_type_and_counters_end_in_total() -> None:
    metrics = Metrics()
    metrics.inc("pushes", 2, channel="ankorstore")
    metrics.inc("errors", source="activeants")
    counters = {
        **zero_series(channels=["ankorstore"], sources=["activeants"], apis=["ankorstore"]),
        **metrics.counters(),
    }
    gauges = {
        "cycle_duration_s": 0.25,
        "uptime_s": 12.0,
        "health": 1.0,
        "start_time_seconds": 1_700_000_000.5,
        series_name("source_age_s", {"source": "activeants"}): 3.5,
        series_name("rate_limit_remaining", {"channel": "ankorstore", "window": "minute"}): 590,
    }
    text = Exposition().render(counters, gauges).decode("utf-8")
    parsed = list(text_string_to_metric_families(text))
    assert parsed, text
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, flags=re.MULTILINE))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))
    for family in parsed:
        # The text format names a counter family with its _total; the parser strips it.
        exposed = family.name + ("_total" if family.type == "counter" else "")
        assert family.documentation, f"{family.name} has no HELP"
        assert exposed in helps, f"no # HELP line for {exposed}"
        assert exposed in types, f"no # TYPE line for {exposed}"
        assert family.type in {"counter", "gauge"}
        for sample in family.samples:
            assert not re.search(r"_s($|_)", sample.name), f"{sample.name}: unit is not base"
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
    names = {family.name for family in parsed}
    # Base units, and a start time rather than an uptime that drifts.
    assert "syncd_cycle_duration_seconds" in names
    assert "syncd_source_age_seconds" in names
    assert "syncd_start_time_seconds" in names
    assert "syncd_uptime_s" not in names
    assert {"process_start_time_seconds", "process_open_fds", "process_max_fds"} <= names


def test_counters_are_there_from_the_start_at_zero() -> None:
    counters = zero_series(channels=["ankorstore", "fabric"], sources=["astral"], apis=["fabric"])
    scraped = _scrape(counters, {})
    pushes = {s.labels["channel"]: s.value for s in _samples(scraped["syncd_pushes"])}
    assert pushes == {"ankorstore": 0.0, "fabric": 0.0}
    errors = {tuple(s.labels.items()) for s in _samples(scraped["syncd_errors"])}
    assert errors == {
        (("channel", "ankorstore"),),
        (("channel", "fabric"),),
        (("source", "astral"),),
        (("component", "engine"),),
    }
    [limited] = _samples(scraped["syncd_http_rate_limited"])
    assert (limited.name, limited.labels, limited.value) == (
        "syncd_http_rate_limited_total",
        {"api": "fabric"},
        0.0,
    )
    [cycles] = _samples(scraped["syncd_cycles"])
    assert cycles.value == 0.0


def test_a_labelled_counter_is_not_exported_beside_its_total() -> None:
    metrics = Metrics()
    metrics.inc("pushes", 2, channel="ankorstore")
    metrics.inc("pushes", 3, channel="fabric")
    scraped = _scrape(metrics.counters(), {})
    values = {s.labels.get("channel"): s.value for s in _samples(scraped["syncd_pushes"])}
    assert values == {"ankorstore": 2.0, "fabric": 3.0}  # sum() is 5, not 10


def test_label_values_survive_escaping_both_ways() -> None:
    odd = 'we"ird\\chan\nnel'
    series = series_name("pushes", {"channel": odd})
    assert parse_series(series) == ("pushes", {"channel": odd})
    [sample] = _samples(_scrape({series: 1}, {})["syncd_pushes"])
    assert sample.labels == {"channel": odd}


def test_a_name_missing_from_the_catalogue_is_still_exported_with_help() -> None:
    [family] = families({"brand_new": 1}, {})
    assert family.name == "syncd_brand_new"
    assert "not described yet" in family.documentation


def test_every_counter_syncd_counts_is_in_the_catalogue() -> None:
    counted: dict[str, str] = {}
    for path in sorted(SYNCD.rglob("*.py")):
        for name in re.findall(r'\.inc\(\s*"(\w+)"', path.read_text(encoding="utf-8")):
            counted[name] = path.name
    assert "pushes" in counted  # the scan finds what it looks for
    missing = {name: where for name, where in counted.items() if name not in COUNTERS}
    assert missing == {}


def test_every_gauge_the_status_service_measures_is_in_the_catalogue() -> None:
    text = "".join(
        (SYNCD / "daemon" / name).read_text(encoding="utf-8")
        for name in ("service.py", "status_rows.py")
    )
    measured = set(re.findall(r'series_name\(\s*"(\w+)"', text))
    measured |= {"cycle_duration_s", "queue_depth", "health", "start_time_seconds"}
    assert measured - {"uptime_s"} <= set(GAUGES)
    assert all(family.help.endswith(".") for family in [*COUNTERS.values(), *GAUGES.values()])


def test_process_figures_survive_a_hidden_proc_stat(tmp_path: Path) -> None:
    # systemd's ProcSubset=pid (in syncd.service) hides /proc/stat but not /proc/self.
    (tmp_path / "self").symlink_to("/proc/self")
    text = Exposition(proc=str(tmp_path)).render({}, {}).decode("utf-8")
    scraped = {family.name: family for family in text_string_to_metric_families(text)}
    [start] = _samples(scraped["process_start_time_seconds"])
    [real] = _samples(_scrape({}, {})["process_start_time_seconds"])
    assert abs(start.value - real.value) < 5
    assert _samples(scraped["process_open_fds"])[0].value > 0
