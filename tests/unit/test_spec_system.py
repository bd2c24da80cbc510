"""System declarations as a user writes them: promises by SQL or by PromQL, each problem with
its file and line (the system file's own lines when it is included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoskit.errors import SpecError
from chaoskit.spec.loader import load_experiment

SYSTEM = """apiVersion: chaoskit/v1
kind: System
metadata: {{name: theirs}}
prometheus: http://127.0.0.1:9090
promises:
  refund:
{promise}
"""

EXPERIMENT = """apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: x}}
system: system.yaml
target: {{platform: fake, lab: /tmp/none}}
hypothesis:
  - name: refunds-late
    probe: {{type: schedule, promise: refund, measure: {measure}}}
    expect: "<= 1"
"""


def load(tmp: Path, promise: str, measure: str = "lag_p99") -> object:
    (tmp / "system.yaml").write_text(SYSTEM.format(promise=promise))
    path = tmp / "x.yaml"
    path.write_text(EXPERIMENT.format(measure=measure))
    return load_experiment(path)


PROMQL = "    promql: {lag_p99: 'histogram_quantile(0.99, sum by (le) (rate(lag_bucket[1m])))'}"


def test_a_promise_in_metrics_gives_a_promql_per_measure(tmp_path: Path) -> None:
    experiment = load(tmp_path, PROMQL)
    promise = experiment.system.promises["refund"]  # type: ignore[attr-defined]
    assert promise.query is None and set(promise.promql) == {"lag_p99"}


def test_a_measure_the_promql_promise_does_not_give_is_refused_at_the_probe(
        tmp_path: Path) -> None:
    with pytest.raises(SpecError) as refused:
        load(tmp_path, PROMQL, measure="on_time_ratio")
    (problem,) = refused.value.problems
    assert (problem.path, problem.line) == (str(tmp_path / "x.yaml"), 8)
    assert "no PromQL for the measure 'on_time_ratio'" in problem.message


@pytest.mark.parametrize("promise, words", [
    ("    promql: {lag_p98: 'x'}", "promql names measures ['lag_p98']"),
    ("    query: SELECT 1\n    promql: {lag_p99: 'x'}", "either `query:`"),
    ("    states: {completed: [DONE], pending: [WAIT]}", "either `query:`"),
    ("    query: DELETE FROM flows\n    states: {completed: [A], pending: [B]}", "read"),
])
def test_a_bad_promise_is_refused_in_its_own_file(tmp_path: Path, promise: str,
                                                  words: str) -> None:
    with pytest.raises(SpecError) as refused:
        load(tmp_path, promise)
    assert all(p.path == str(tmp_path / "system.yaml") for p in refused.value.problems)
    assert words in refused.value.render()
