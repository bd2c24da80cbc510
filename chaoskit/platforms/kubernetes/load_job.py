"""Load from many machines: the load worker as an Indexed Job, one share of the schedule per pod.

Pod i (JOB_COMPLETION_INDEX) takes arrivals i, i+N, i+2N, ... of the one seeded schedule (the
same split the local worker processes use), so N pods together send exactly the asked arrivals
and rate. Each pod writes its final report (latency and lag histograms as bucket counts, counts)
to the ConfigMap `<job>-<index>`; the runner reads them back and merges them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from chaoskit.load.plan import LoadPlan
from chaoskit.platforms.kubernetes.cluster import MANAGED, RUN

PLAN_ENV = "CHAOSKIT_LOAD_PLAN"
START_ENV = "CHAOSKIT_LOAD_START"   # wall-clock epoch seconds every pod starts sending at
REPORT_ENV = "CHAOSKIT_LOAD_REPORT"  # ConfigMap name prefix for the pods' reports
LOAD_JOB = "chaoskit.io/load-job"    # label on the Job, its pods and their report ConfigMaps
REPORT_KEY = "report.json"
COUNTS = ("intended", "sent", "ok", "errors", "dropped", "capped")  # per flow, summed


def index_shares(total: int, workers: int) -> list[int]:
    """Arrivals of each index when index i takes arrivals i, i+N, ...: they sum to `total`."""
    return [len(range(index, total, workers)) for index in range(workers)]


def load_job(plan: LoadPlan, *, name: str, pods: int, image: str, run: str,
             start_at: float) -> dict[str, Any]:
    """The Indexed Job manifest (pure): completions = parallelism = pods, one plan for all."""
    shared = dataclasses.replace(plan, workers=pods, worker=0, ack_path=None,
                                 max_in_flight=-(-plan.max_in_flight * plan.workers // pods))
    labels = {MANAGED: "true", LOAD_JOB: name}
    env = [{"name": PLAN_ENV, "value": shared.to_json()},
           {"name": START_ENV, "value": f"{start_at:.3f}"},
           {"name": REPORT_ENV, "value": name}]
    container = {"name": "load", "image": image,
                 "command": ["python", "-m", "chaoskit.platforms.kubernetes.load_pod"],
                 "env": env, "resources": {"requests": {"cpu": "1", "memory": "256Mi"}}}
    deadline = int(plan.run_seconds + plan.timeout + 120)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": labels, "annotations": {RUN: run}},
            "spec": {"completionMode": "Indexed", "completions": pods, "parallelism": pods,
                     "backoffLimit": 0, "activeDeadlineSeconds": deadline,
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "restartPolicy": "Never", "serviceAccountName": "chaoskit-runner",
                         "containers": [container]}}}}


def plan_of(job: dict[str, Any], index: int) -> LoadPlan:
    """The plan pod `index` runs (what load_pod does with its environment)."""
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    return dataclasses.replace(LoadPlan.from_json(env[PLAN_ENV]), worker=index)


def report_configmap(job: str, index: int, report: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{job}-{index}", "labels": {LOAD_JOB: job}},
            "data": {REPORT_KEY: json.dumps(report, separators=(",", ":"))}}


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of the pods' final reports: histograms merged bucket by bucket."""
    from chaoskit.load.summary import latency_ms, merged_counts

    latency = merged_counts([r["latency"] for r in reports])
    lag = merged_counts([r["lag"] for r in reports])
    totals = {name: sum(r.get("totals", {}).get(name, 0) for r in reports) for name in COUNTS}
    return {"pods": len(reports), "indexes": sorted(r.get("index", -1) for r in reports),
            **totals, "acknowledged": sum(r["acks"] for r in reports),
            "connections": sum(r["connections"] for r in reports),
            "cpu_seconds": sum(r["cpu_seconds"] for r in reports),
            "latency_ms": latency_ms(latency), "lag_ms": latency_ms(lag)}
