"""What users read during a run: one plain line per event, facts cut to one readable line."""

from __future__ import annotations

import io

from chaoskit.engine.display import PlainDisplay, brief
from chaoskit.spec.models import Experiment


def _experiment() -> Experiment:
    return Experiment.model_validate({
        "apiVersion": "chaoskit/v1", "kind": "Experiment", "metadata": {"name": "x"},
        "hypothesis": [{"name": "lag", "probe": {"type": "fake", "signal": "s"},
                        "expect": "<= 1"}]})


def test_facts_are_scalar_and_cut_to_one_line() -> None:
    text = brief({"activation_ms": 12.5, "toxics": ["a", "b"], "node": "node-2", "x": "y" * 300})
    assert text.startswith("activation_ms=12.5 node=node-2")
    assert "toxics" not in text and len(text) <= 110 and text.endswith("…")


def test_plain_display_prints_events_and_periodic_probe_values() -> None:
    out = io.StringIO()
    display = PlainDisplay(_experiment(), out)
    display({"kind": "phase", "phase": "inject", "t": 1.0})
    display({"kind": "applied", "fault": "slow", "type": "latency", "t": 1.5,
             "facts": {"activation_ms": 3.2}})
    display({"kind": "sample", "name": "lag", "value": 0.25, "t": 6.6})
    display({"kind": "guardrail", "name": "g", "value": 7.0, "condition": "> 5", "t": 7.0})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("phase inject")
    assert lines[1].endswith("fault slow (latency) applied activation_ms=3.2")
    assert "probes: lag=0.25" in lines[2]
    assert "GUARDRAIL g tripped: 7 > 5" in lines[3]
