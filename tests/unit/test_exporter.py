"""chaoskit's own metrics follow the journal: phase, active faults, trips, verdicts."""

from __future__ import annotations

import socket

import httpx

from chaoskit.exporter import RunExporter


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _value(exporter: RunExporter, name: str, **labels: str) -> float | None:
    return exporter.registry.get_sample_value(name, {"experiment": "e1", **labels})


def test_metrics_follow_the_runs_records() -> None:
    exporter = RunExporter("e1")
    exporter({"kind": "phase", "phase": "inject"})
    exporter({"kind": "applied", "fault": "slow-bank", "type": "latency"})
    assert _value(exporter, "chaoskit_experiment_phase", phase="inject") == 1.0
    assert _value(exporter, "chaoskit_experiment_phase", phase="baseline") == 0.0
    assert _value(exporter, "chaoskit_active_faults", fault="slow-bank", type="latency") == 1.0
    exporter({"kind": "reverted", "fault": "slow-bank"})
    exporter({"kind": "guardrail", "name": "errors", "value": 3.0, "condition": "> 1"})
    exporter({"kind": "sample", "name": "p99", "role": "hypothesis", "value": 0.25})
    exporter({"kind": "result", "status": "aborted"})
    assert _value(exporter, "chaoskit_active_faults", fault="slow-bank", type="latency") == 0.0
    assert _value(exporter, "chaoskit_guardrail_trips_total", guardrail="errors") == 1.0
    assert _value(exporter, "chaoskit_probe_value", probe="p99", role="hypothesis") == 0.25
    assert _value(exporter, "chaoskit_verdicts_total", status="aborted") == 1.0


def test_metrics_are_served_on_the_asked_port_on_loopback() -> None:
    port = _free_port()
    exporter = RunExporter("e1", port=port)
    try:
        exporter({"kind": "applied", "fault": "f", "type": "node-loss"})
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'chaoskit_active_faults{experiment="e1",fault="f",type="node-loss"} 1.0' in body
    finally:
        exporter.close()


def test_the_grafana_dashboard_only_queries_metrics_that_exist() -> None:
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[2] / "k8s/grafana/chaoskit-dashboard.json")
                           .read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {re.sub(r"_(bucket|total)$", "", n) for e in exprs
             for n in re.findall(r"\b((?:chaoskit|payments)_[a-z_]+)", e)}
    exporter = RunExporter("e1")
    ours = {m.name for m in exporter.registry.collect()}
    stack_metrics = Path(__file__).parents[2] / "chaoskit/stack/metrics.py"
    theirs = set(re.findall(r'"(payments_[a-z_]+)"', stack_metrics.read_text()))
    theirs = {re.sub(r"_total$", "", n) for n in theirs}
    assert names <= ours | theirs, names - ours - theirs
