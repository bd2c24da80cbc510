"""Scheduled runs on Kubernetes, without a cluster: the rendered objects (valid against the
OpenAPI schema), apply/list/delete through the ClusterApi seam, and the pod's summary step."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from chaoskit.errors import PlatformError
from chaoskit.journal import JournalWriter, Kind
from chaoskit.platforms.kubernetes import schedule_pod
from chaoskit.platforms.kubernetes.cluster import ObjectView
from chaoskit.platforms.kubernetes.schedule import (
    ScheduledRun,
    apply,
    delete,
    render,
    render_schedules,
    schedules,
)
from chaoskit.schedules import ScheduleError
from tests.unit.test_k8s_manifests import schema_version

IMAGE = "chaoskit/payment-stack:0.1.0"
EXPERIMENT = "apiVersion: chaoskit/v1\nkind: Experiment\nmetadata: {name: bank-latency}\n"


def scheduled(**changes: Any) -> ScheduledRun:
    fields: dict[str, Any] = {
        "name": "bank-latency", "experiment": "bank-latency.yaml", "cron": "30 9 * * 1-5",
        "timezone": "Europe/Berlin", "image": IMAGE, "window": "Mon-Fri 09:00-18:00",
        "files": (("bank-latency.yaml", EXPERIMENT), ("profiles/peak.yaml", "rate: 600/s\n")),
        "args": ("--seed", "7")}
    return ScheduledRun(**{**fields, **changes})


def pod_spec(cronjob: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def test_the_objects_are_valid_kubernetes_objects() -> None:
    for doc in render(scheduled()) + render(scheduled(claim="chaoskit-runs", deadline=1800)):
        kubernetes_validate.validate(doc, schema_version(), strict=True)


def test_the_cronjob_runs_chaoskit_as_the_runner_once_at_a_time_in_the_zone() -> None:
    files, cronjob = render(scheduled())
    assert cronjob["metadata"]["name"] == "chaoskit-bank-latency"
    assert cronjob["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "chaoskit",
                                             "chaoskit.io/schedule": "bank-latency"}
    spec = cronjob["spec"]
    assert spec["schedule"] == "30 9 * * 1-5" and spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    pod = pod_spec(cronjob)
    assert pod["serviceAccountName"] == "chaoskit-runner" and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    command = container["command"]
    assert command[:6] == ["/opt/chaoskit/bin/python", "-m",
                           "chaoskit.platforms.kubernetes.schedule_pod", "--runs", "/runs", "--"]
    assert command[6:] == ["/opt/chaoskit/bin/chaoskit", "run", "/experiment/bank-latency.yaml",
                           "--out", "/runs", "--display", "plain", "--seed", "7"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CHAOSKIT_JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/job-name']")
    assert files["metadata"]["name"] == "chaoskit-bank-latency-experiment"
    assert files["data"] == {"bank-latency.yaml": EXPERIMENT, "profiles_peak.yaml": "rate: 600/s\n"}


def test_included_files_keep_their_paths_and_runs_go_to_a_claim_when_given() -> None:
    volumes = {v["name"]: v for v in pod_spec(render(scheduled())[1])["volumes"]}
    assert volumes["experiment"]["configMap"] == {
        "name": "chaoskit-bank-latency-experiment",
        "items": [{"key": "bank-latency.yaml", "path": "bank-latency.yaml"},
                  {"key": "profiles_peak.yaml", "path": "profiles/peak.yaml"}]}
    assert volumes["runs"] == {"name": "runs", "emptyDir": {}}
    claimed = {v["name"]: v for v in pod_spec(render(scheduled(claim="runs-pvc"))[1])["volumes"]}
    assert claimed["runs"]["persistentVolumeClaim"] == {"claimName": "runs-pvc"}
    mounts = {m["name"]: m for m in pod_spec(render(scheduled())[1])["containers"][0]
              ["volumeMounts"]}
    assert mounts["experiment"] == {"name": "experiment", "mountPath": "/experiment",
                                    "readOnly": True}


@pytest.mark.parametrize(("changes", "says"), [
    ({"name": "Bank_Latency"}, "cannot name a CronJob"),
    ({"name": "x" * 44}, "cannot name a CronJob"),
    ({"experiment": "other.yaml"}, "is not among the files given"),
    ({"files": (("bank-latency.yaml", "x"), ("../secrets.yaml", "y"))}, "relative path"),
    ({"files": (("bank-latency.yaml", "x"), ("a/b.yaml", ""), ("a_b.yaml", ""))},
     "same ConfigMap key"),
    ({"files": (("bank-latency.yaml", "x" * 1_000_000),)}, "a ConfigMap holds less than 1 MiB"),
])
def test_what_cannot_be_scheduled_is_refused_with_what_to_do(changes: dict[str, Any],
                                                              says: str) -> None:
    with pytest.raises(PlatformError) as raised:
        render(scheduled(**changes))
    assert says in raised.value.message and raised.value.hint


def test_a_bad_cron_or_zone_is_refused_before_anything_is_applied() -> None:
    with pytest.raises(ScheduleError):
        render(scheduled(cron="30 9 * * 7"))
    with pytest.raises(ScheduleError):
        render(scheduled(timezone="Mars/Olympus"))


class Cluster:
    """Objects by (kind, name), with the label selection `list_objects` does."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []

    def list_objects(self, kind: str, namespace: str, selector: str = "") -> list[ObjectView]:
        wanted = dict(s.split("=", 1) for s in selector.split(",") if s)
        return [ObjectView(kind, name, namespace, dict(body["metadata"].get("labels", {})),
                           dict(body["metadata"].get("annotations", {})),
                           data=dict(body.get("data", {})), uid=f"uid-{name}")
                for (k, name), body in sorted(self.objects.items())
                if k == kind and wanted.items() <= body["metadata"].get("labels", {}).items()]

    def create_object(self, kind: str, namespace: str, body: dict[str, Any]) -> None:
        assert (kind, body["metadata"]["name"]) not in self.objects, "409 Conflict"
        self.calls.append(f"create {kind}")
        self.objects[(kind, body["metadata"]["name"])] = body

    def replace_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.calls.append(f"replace {kind}")
        self.objects[(kind, name)] = body

    def delete_object(self, kind: str, namespace: str, name: str) -> None:
        self.calls.append(f"delete {kind}")
        self.objects.pop((kind, name), None)


def test_apply_creates_then_replaces_list_shows_summaries_delete_removes_all() -> None:
    cluster = Cluster()
    assert apply(cluster, "payments", scheduled()) == [  # type: ignore[arg-type]
        "ConfigMap payments/chaoskit-bank-latency-experiment created",
        "CronJob payments/chaoskit-bank-latency created"]
    assert apply(cluster, "payments", scheduled(cron="0 10 * * 1-5"))[1] == (  # type: ignore[arg-type]
        "CronJob payments/chaoskit-bank-latency replaced")
    job = "chaoskit-bank-latency-29401234"
    cluster.objects[("Job", job)] = {"metadata": {"name": job, "labels": {
        "app.kubernetes.io/managed-by": "chaoskit", "chaoskit.io/schedule": "bank-latency"}}}
    summary = {"run_id": "r1", "status": "failed", "exit_code": 1, "verdicts": []}
    name = schedule_pod.keep_summary(cluster, "payments", job,  # type: ignore[arg-type]
                                     "bank-latency", summary)
    kept = cluster.objects[("ConfigMap", name)]
    assert name == f"{job}-summary"
    assert kept["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": f"uid-{job}"}]
    (view,) = schedules(cluster, "payments")  # type: ignore[arg-type]
    assert (view.name, view.cron, view.timezone) == ("bank-latency", "0 10 * * 1-5",
                                                     "Europe/Berlin")
    assert view.summaries[0]["status"] == "failed" and view.summaries[0]["job"] == job
    lines = render_schedules([view])
    assert lines[0] == ("bank-latency: bank-latency.yaml at '0 10 * * 1-5' (Europe/Berlin), "
                        "window 'Mon-Fri 09:00-18:00'")
    assert lines[1] == f"    {job}: failed (exit 1, run r1)"
    gone = delete(cluster, "payments", "bank-latency")  # type: ignore[arg-type]
    assert len(gone) == 4 and cluster.objects == {}
    assert delete(cluster, "payments", "bank-latency") == []  # type: ignore[arg-type]
    assert render_schedules([]) == ["no chaoskit schedules in this namespace"]


def write_journal(runs: Path, status: str) -> Path:
    writer = JournalWriter(runs / "r1" / "journal.jsonl")
    writer.write(Kind.HEADER, run_id="r1", experiment="bank-latency", source="x.yaml", seed=3,
                 pid=1, spec={}, platform={"platform": "local"}, lease="")
    writer.write(Kind.RESULT, status=status, exit_code=1, verdicts=[],
                 audit={"clean": True, "residue": {}, "errors": {}})
    writer.close()
    return runs / "r1" / "journal.jsonl"


def test_the_pod_summarizes_the_journal_its_run_wrote(tmp_path: Path) -> None:
    chaoskit = str(Path(sys.executable).parent / "chaoskit")
    journal = write_journal(tmp_path, "failed")
    found = schedule_pod.newest_journal(tmp_path, since=journal.stat().st_mtime)
    assert found == journal
    summary = schedule_pod.summarize(chaoskit, found, 1)
    assert (summary["run_id"], summary["status"], summary["seed"]) == ("r1", "failed", 3)
    missing = schedule_pod.summarize(chaoskit, None, 4)
    assert missing["status"] == "error" and "wrote no journal" in missing["error"]


def test_the_pods_exit_status_is_the_runs_even_without_a_job_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAOSKIT_JOB_NAME", raising=False)
    code = schedule_pod.main(["--runs", str(tmp_path), "--", sys.executable, "-c",
                              "raise SystemExit(3)"])
    assert code == 3
    refused = [sys.executable, "-c", "import sys; print('not allowed now: Sat 10:15 CET', "
               "file=sys.stderr); sys.exit(4)"]
    assert schedule_pod.run(refused) == (4, "not allowed now: Sat 10:15 CET")
    summary = schedule_pod.summarize("chaoskit", None, 4, "not allowed now: Sat 10:15 CET")
    assert summary["error"] == "the run wrote no journal: not allowed now: Sat 10:15 CET"
    assert schedule_pod.main(["--runs", str(tmp_path), "--", "/nonexistent/chaoskit"]) == 127
    kept = json.loads(schedule_pod.summary_configmap("j", "s", {"status": "held"})["data"]
                      ["summary.json"])
    assert kept == {"status": "held"}
