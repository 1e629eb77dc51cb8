"""deploy/: Prometheus rules (promtool), the Grafana dashboard, the systemd unit, the config."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from camsvc.app import App
from camsvc.config import AlertsConfig
from camsvc.observability.alerts import ALERTS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "camsvc-dashboard.json"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing (Debian package prometheus; scripts/install.sh)"
)

_KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan", "Inf", "NaN"})


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names a PromQL expression selects."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end() :].lstrip().startswith("(") or m.group() in _KEYWORDS:
            continue
        names.add(m.group())
    return names


@pytest.fixture
def exported(make_config) -> set[str]:
    """Every sample name the service's registry can export (families without samples too)."""
    app = App(make_config())
    names = set()
    for family in app.metrics.registry.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum", "_created")}
        else:
            names.add(family.name)
        names |= {s.name for s in family.samples}
    return names


def _rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+)([smh])", text)
    assert m, text
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


class TestExtractor:
    """The helper the checks below rely on."""

    def test_metric_names(self):
        """Functions, labels, ranges, grouping and keywords are not metric names."""
        expr = (
            'histogram_quantile(0.95, sum by (method, le) (rate(a_bucket{job=~"$job"}'
            "[$__rate_interval]))) / on (job) b > 2 * clamp_min(c:rec, 0.05) and d offset 1m"
        )
        assert metric_names(expr) == {"a_bucket", "b", "c:rec", "d"}


@needs_promtool
class TestPromtool:
    """The shipped rules and scrape config pass promtool's own checks and unit tests."""

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [PROMTOOL, *args], cwd=PROM, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_check_rules(self):
        """promtool check rules alerts.yml."""
        self._run("check", "rules", "alerts.yml")

    def test_unit_tests(self):
        """promtool test rules alerts_test.yml: every alert fires on its series."""
        self._run("test", "rules", "alerts_test.yml")

    def test_check_config(self):
        """promtool check config prometheus.yml (which loads alerts.yml)."""
        self._run("check", "config", "prometheus.yml")


class TestRules:
    """The Prometheus rules match the in-service alerts."""

    def test_every_in_service_alert_has_a_rule(self):
        """Same names (label camsvc_alert), severities and durations as AlertsConfig."""
        cfg = AlertsConfig()
        durations = {
            "response_time_warning": cfg.response_time_warning_for,
            "response_time_critical": cfg.response_time_critical_for,
            "cpu_high": cfg.cpu_for,
            "memory_high": cfg.memory_for,
            "disk_high": cfg.disk_for,
            "response_time_anomaly": cfg.anomaly_for,
            "error_rate_anomaly": cfg.anomaly_for,
        }
        rules = {r["labels"]["camsvc_alert"]: r for r in _rules() if "alert" in r}
        assert set(ALERTS) <= set(rules)
        for name, severity in ALERTS.items():
            assert rules[name]["labels"]["severity"] == severity, name
            assert _seconds(rules[name]["for"]) == durations[name], name

    def test_every_alert_has_a_firing_unit_test(self):
        """alerts_test.yml expects each alert to fire at least once."""
        doc = yaml.safe_load((PROM / "alerts_test.yml").read_text())
        fired = {
            case["alertname"]
            for test in doc["tests"]
            for case in test["alert_rule_test"]
            if case["exp_alerts"]
        }
        assert fired == {r["alert"] for r in _rules() if "alert" in r}

    def test_expressions_name_exported_metrics(self, exported):
        """Every series a rule selects is exported, a recording rule, or `up`."""
        recorded = {r["record"] for r in _rules() if "record" in r}
        for rule in _rules():
            names = metric_names(rule["expr"])
            assert names, rule
            assert names <= exported | recorded | {"up"}, (rule, names - exported - recorded)


class TestDashboard:
    """deploy/grafana/camsvc-dashboard.json."""

    def _panels(self) -> list[dict]:
        doc = json.loads(DASHBOARD.read_text())
        out = []
        for panel in doc["panels"]:
            out.append(panel)
            out.extend(panel.get("panels", []))
        return [p for p in out if p["type"] != "row"]

    def test_loads_with_unique_ids(self):
        """Valid JSON, a uid, panels with unique ids and grid positions."""
        doc = json.loads(DASHBOARD.read_text())
        assert doc["uid"] and doc["title"]
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids))
        assert all({"h", "w", "x", "y"} <= set(p["gridPos"]) for p in doc["panels"])

    def test_expressions_name_exported_metrics(self, exported):
        """Every panel query selects only metrics the service exports."""
        for panel in self._panels():
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                names = metric_names(target["expr"])
                assert names, (panel["title"], target["expr"])
                assert names <= exported, (panel["title"], names - exported)

    def test_required_panels(self):
        """The spec's panels and those issue 9 adds are there."""
        exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in self._panels()}
        wanted = {
            "Response time by method": "camera_service_response_time_seconds_bucket",
            "Request rate by method": "camera_service_requests_total",
            "Errors": "camera_service_errors_total",
            "Open WebSocket connections": "camera_service_active_connections",
            "Snapshot latency": "camera_service_snapshot_duration_seconds_bucket",
            "Active recordings": "camera_service_recordings_active",
            "Cameras by status": "camera_service_cameras",
            "CPU": "process_cpu_seconds_total",
            "Memory": "process_resident_memory_bytes",
            "File descriptors": "process_open_fds",
        }
        for title, metric in wanted.items():
            matches = [t for t in exprs if t.startswith(title)]
            assert matches, title
            assert any(metric in exprs[t] for t in matches), title
        assert "by (method, le)" in exprs["Response time by method (p95)"]


class TestSystemdUnit:
    """deploy/camsvc.service."""

    def _unit(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # keep the case of keys
        parser.read(DEPLOY / "camsvc.service")
        return parser

    def test_runs_serve_with_a_config(self):
        """ExecStart runs `camsvc --config <path> serve`; state under StateDirectory."""
        svc = self._unit()["Service"]
        assert re.search(r"/camsvc --config \S+\.yaml serve$", svc["ExecStart"])
        assert svc["StateDirectory"] == "camsvc"
        assert int(svc["LimitNOFILE"]) >= 2048

    def test_hardening(self):
        """The hardening options are set, and the cameras stay reachable."""
        svc = self._unit()["Service"]
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "DevicePolicy": "closed",
            "DeviceAllow": "char-video4linux rw",
            "CapabilityBoundingSet": "",
            "RestrictSUIDSGID": "yes",
            "SystemCallFilter": "@system-service",
        }.items():
            assert svc[key] == value, key
        assert "PrivateDevices" not in svc

    @pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
    def test_systemd_analyze_verify(self):
        """systemd-analyze verify finds nothing but the absent /opt/camsvc install."""
        proc = subprocess.run(
            ["systemd-analyze", "verify", str(DEPLOY / "camsvc.service")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        problems = [
            line
            for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip() and "/opt/camsvc/bin/camsvc" not in line
        ]
        assert problems == []


def test_example_config_is_the_projects():
    """deploy/camsvc.example.yaml is the documented example config itself."""
    link = DEPLOY / "camsvc.example.yaml"
    assert link.resolve() == (DEPLOY.parent / "camsvc.example.yaml").resolve()
    assert "alerts:" in link.read_text()
