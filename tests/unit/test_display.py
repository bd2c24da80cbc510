"""What users read during a run: one plain line per event, facts cut to one readable line."""

from __future__ import annotations

import io
import os
import re
import threading

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


def test_a_pipe_nobody_reads_never_blocks_the_run_and_the_loss_is_said() -> None:
    """A parent that never drains the run's stdout pipe: after ~64 kB a write blocks. The
    display must not (it runs on the event loop); the lines beyond its queue are dropped and
    counted, and the count is written once the pipe is read again."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    display = PlainDisplay(_experiment(), stream)
    done = threading.Event()

    def flood() -> None:
        for i in range(30_000):  # ~2 MB of lines: 30 times what the pipe holds
            display({"kind": "event", "message": f"line {i} " + "x" * 50, "t": float(i)})
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(30), "the display blocked on a pipe nobody reads"
    received = b""
    with os.fdopen(read_end, "rb") as reader:
        closer = threading.Thread(target=lambda: (display.close(), stream.close()))
        closer.start()
        while chunk := reader.read(65536):
            received += chunk
        closer.join(10)
    text = received.decode()
    kept = [line for line in text.splitlines() if " line " in line]
    dropped = re.findall(r"\((\d+) display lines dropped: the output was not being read\)", text)
    assert kept[0].endswith("] line 0 " + "x" * 50) and len(kept) >= 10_000  # in order
    assert dropped and len(kept) + sum(int(n) for n in dropped) == 30_000  # none unaccounted
