"""Scheduled game days on the real control plane: the CronJob controller creates the Job on time.

The schedule is applied as a ServiceAccount bound to k8s/'s `chaoskit-scheduler` Role, one
minute ahead in Europe/Berlin; the CronJob controller makes the Job (KWOK nodes run nothing, so
the Job and its spec are what is asserted). The run's summary step then runs here as a process,
as `chaoskit-runner` with the environment the cluster stored, and keeps its ConfigMap. Last,
`delete` leaves nothing. The tests share one fired schedule and run in this file's order.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chaoskit.platforms.kubernetes import schedule
from chaoskit.platforms.kubernetes.kube import KubeCluster, api_client
from tests.fixtures.control_plane import ROOT, ControlPlane
from tests.fixtures.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s]
NS = "chaoskit-schedules"
NAME = "bank-latency"
IMAGE = "chaoskit/payment-stack:0.1.0"
ZONE = "Europe/Berlin"


def rbac_docs() -> list[dict[str, Any]]:
    """k8s/base/rbac.yaml's namespaced objects, for NS, plus a `scheduler` account bound to the
    chaoskit-scheduler Role."""
    docs = [d for d in yaml.safe_load_all((ROOT / "k8s" / "base" / "rbac.yaml").read_text())
            if d and d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    for doc in docs:
        for subject in doc.get("subjects", []):
            subject["namespace"] = NS
    docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "scheduler"}})
    docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "chaoskit-scheduler"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": "chaoskit-scheduler"},
                 "subjects": [{"kind": "ServiceAccount", "name": "scheduler", "namespace": NS}]})
    return docs


def create(api: Any, doc: dict[str, Any]) -> None:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    make = {"ServiceAccount": core.create_namespaced_service_account,
            "Role": rbac.create_namespaced_role,
            "RoleBinding": rbac.create_namespaced_role_binding}[doc["kind"]]
    make(NS, doc)


def kubeconfig_for(plane: ControlPlane, api: Any, account: str, folder: Path) -> Path:
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, NS, {"spec": {"expirationSeconds": 3600}}).status.token
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path = folder / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Accounts:
    api: Any           # admin: for checking what the cluster holds
    scheduler: Path    # kubeconfig of the account bound to chaoskit-scheduler
    runner: Path       # kubeconfig of chaoskit-runner


@pytest.fixture(scope="module")
def accounts(control_plane: ControlPlane,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accounts]:
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NS}})
        try:
            eventually(lambda: core.list_namespaced_service_account(NS).items, 60,
                       "the namespace's default service account")
            for doc in rbac_docs():
                create(api, copy.deepcopy(doc))
            folder = tmp_path_factory.mktemp("accounts")
            yield Accounts(api, kubeconfig_for(control_plane, api, "scheduler", folder),
                           kubeconfig_for(control_plane, api, "chaoskit-runner", folder))
        finally:
            core.delete_namespace(NS)


def minute_ahead(margin: float = 25.0) -> datetime:
    """The first whole minute at least `margin` seconds away, in ZONE."""
    soon = datetime.now(UTC) + timedelta(seconds=margin)
    return (soon.replace(second=0, microsecond=0) + timedelta(minutes=1)).astimezone(
        ZoneInfo(ZONE))


@dataclass
class Fired:
    fire_at: datetime
    job: Any        # the Job the CronJob controller created (V1Job)
    cronjob: Any    # V1CronJob
    applied: list[str]


@pytest.fixture(scope="module")
def fired(accounts: Accounts) -> Fired:
    fire_at = minute_ahead()
    run = schedule.ScheduledRun(
        name=NAME, experiment="bank-latency.yaml", image=IMAGE, timezone=ZONE,
        cron=f"{fire_at.minute} {fire_at.hour} {fire_at.day} {fire_at.month} *",
        files=(("bank-latency.yaml", "kind: Experiment\n"), ("profiles/peak.yaml", "x: 1\n")),
        args=("--seed", "7"), env={"CHAOSKIT_CODE_VERSION": "v1.2.3"})
    with api_client(str(accounts.scheduler), None) as as_scheduler:
        applied = schedule.apply(KubeCluster(as_scheduler), NS, run)
    batch = client.BatchV1Api(accounts.api)
    wait = (fire_at - datetime.now(UTC)).total_seconds() + 60
    assert wait < 150
    jobs = eventually(lambda: batch.list_namespaced_job(
        NS, label_selector=schedule.selector(NAME)).items, wait,
        f"the CronJob controller's Job for {fire_at:%H:%M %Z}", interval=1.0)
    return Fired(fire_at, jobs[0], batch.read_namespaced_cron_job(f"chaoskit-{NAME}", NS), applied)


def test_the_cronjob_controller_creates_the_job_on_time(fired: Fired) -> None:
    assert fired.applied == [f"ConfigMap {NS}/chaoskit-{NAME}-experiment created",
                             f"CronJob {NS}/chaoskit-{NAME} created"]
    annotations = fired.job.metadata.annotations or {}
    stamp = annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    scheduled = datetime.fromisoformat(stamp)
    assert scheduled == fired.fire_at  # the minute asked, in the zone asked
    created = fired.job.metadata.creation_timestamp
    assert timedelta(0) <= created - fired.fire_at < timedelta(seconds=30)
    (owner,) = fired.job.metadata.owner_references
    assert (owner.kind, owner.name) == ("CronJob", f"chaoskit-{NAME}")
    assert fired.cronjob.spec.concurrency_policy == "Forbid"
    assert fired.cronjob.spec.time_zone == ZONE


def test_the_job_runs_chaoskit_as_the_runner_with_the_experiment_mounted(fired: Fired) -> None:
    pod = fired.job.spec.template.spec
    assert pod.service_account_name == "chaoskit-runner"
    (container,) = pod.containers
    assert container.image == IMAGE
    assert container.command[container.command.index("--") + 1:] == [
        "/opt/chaoskit/bin/chaoskit", "run", "/experiment/bank-latency.yaml", "--out", "/runs",
        "--display", "plain", "--seed", "7"]
    mounts = {m.name: m for m in container.volume_mounts}
    assert mounts["experiment"].mount_path == "/experiment" and mounts["experiment"].read_only
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["experiment"].config_map.name == f"chaoskit-{NAME}-experiment"
    assert {(i.key, i.path) for i in volumes["experiment"].config_map.items} == {
        ("bank-latency.yaml", "bank-latency.yaml"), ("profiles_peak.yaml", "profiles/peak.yaml")}
    assert fired.job.spec.backoff_limit == 0


def summary_step(job: Any, runner: Path, runs: Path) -> subprocess.CompletedProcess[str]:
    """The Job's command as a local process: its wrapper, with a stand-in for `chaoskit run`
    that writes a journal, and the environment the cluster would give the pod."""
    command = job.spec.template.spec.containers[0].command
    wrapper = command[command.index("-m") + 1:command.index("--")]
    wrapper[wrapper.index("--runs") + 1] = str(runs)
    stand_in = [sys.executable, "-c", (
        "import sys; from pathlib import Path; from chaoskit.journal import JournalWriter, Kind\n"
        f"w = JournalWriter(Path({str(runs)!r}) / 'r1' / 'journal.jsonl')\n"
        "w.write(Kind.HEADER, run_id='r1', experiment='bank-latency', source='x', seed=7,"
        " pid=1, spec={}, platform={}, lease='')\n"
        "w.write(Kind.RESULT, status='failed', exit_code=1, verdicts=[], audit={'clean': True})\n"
        "w.close(); sys.exit(1)")]
    env = {**os.environ, "KUBECONFIG": str(runner), "PYTHONPATH": str(ROOT),
           "CHAOSKIT_JOB_NAME": job.metadata.name, "POD_NAMESPACE": NS,
           "CHAOSKIT_SCHEDULE": NAME}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run([sys.executable, "-m", *wrapper, "--", *stand_in], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_runner_keeps_the_runs_summary_in_a_configmap_owned_by_the_job(
        fired: Fired, accounts: Accounts, tmp_path: Path) -> None:
    done = summary_step(fired.job, accounts.runner, tmp_path)
    assert done.returncode == 1, done.stderr  # the run's own exit status
    name = f"{fired.job.metadata.name}-summary"
    assert f"summary kept in ConfigMap {NS}/{name}" in done.stdout, done.stderr
    kept = client.CoreV1Api(accounts.api).read_namespaced_config_map(name, NS)
    (owner,) = kept.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", fired.job.metadata.name,
                                                   fired.job.metadata.uid)
    with api_client(str(accounts.scheduler), None) as as_scheduler:
        (view,) = schedule.schedules(KubeCluster(as_scheduler), NS)
    assert view.name == NAME and view.timezone == ZONE
    (summary,) = view.summaries
    assert (summary["run_id"], summary["status"], summary["job"]) == (
        "r1", "failed", fired.job.metadata.name)


def test_the_runner_cannot_manage_schedules(accounts: Accounts) -> None:
    with api_client(str(accounts.runner), None) as as_runner:
        with pytest.raises(ApiException) as refused:
            client.BatchV1Api(as_runner).list_namespaced_cron_job(NS)
        assert refused.value.status == 403


def test_delete_leaves_nothing(fired: Fired, accounts: Accounts) -> None:
    with api_client(str(accounts.scheduler), None) as as_scheduler:
        cluster = KubeCluster(as_scheduler)
        gone = schedule.delete(cluster, NS, NAME)
        assert f"CronJob {NS}/chaoskit-{NAME}" in gone and f"Job {NS}/{fired.job.metadata.name}" \
            in gone
        assert schedule.schedules(cluster, NS) == []
    core, batch = client.CoreV1Api(accounts.api), client.BatchV1Api(accounts.api)
    by_label = schedule.selector(NAME)

    def leftovers() -> list[str]:
        return ([f"CronJob {c.metadata.name}" for c in batch.list_namespaced_cron_job(NS).items]
                + [f"Job {j.metadata.name}" for j in batch.list_namespaced_job(NS).items]
                + [f"ConfigMap {m.metadata.name}" for m in core.list_namespaced_config_map(
                    NS, label_selector=by_label).items]
                + [f"Pod {p.metadata.name}" for p in core.list_namespaced_pod(
                    NS, label_selector=by_label).items])

    try:
        eventually(lambda: not leftovers(), 60, "nothing left of the schedule")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {leftovers()}") from None


def chaoskit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaoskit.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def plan_with_schedule(folder: Path, cron: str, window: str | None = None) -> Path:
    """The shipped 8 PM rehearsal plan and what it includes, with a schedule of our own."""
    import shutil
    shutil.copytree(ROOT / "experiments", folder / "experiments")
    path = folder / "experiments" / "plans" / "rehearsal-8pm.yaml"
    data = yaml.safe_load(path.read_text())
    data["schedule"] = {"cron": cron, "timezone": ZONE, **({"window": window} if window else {})}
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_cli_applies_lists_and_deletes_a_plans_schedule(accounts: Accounts,
                                                            tmp_path: Path) -> None:
    plan = plan_with_schedule(tmp_path, "0 19 * * 5", "Fri 18:00-23:00")
    kube = ["--kubeconfig", str(accounts.scheduler), "--namespace", NS]
    applied = chaoskit("schedule", "apply", str(plan), "--name", "rehearsal", *kube)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"CronJob {NS}/chaoskit-rehearsal created" in applied.stdout
    assert "next runs: Fri" in applied.stdout
    job = client.BatchV1Api(accounts.api).read_namespaced_cron_job("chaoskit-rehearsal", NS)
    command = job.spec.job_template.spec.template.spec.containers[0].command
    assert command[command.index("--") + 1:] == [
        "/opt/chaoskit/bin/chaoskit", "gameday", "/experiment/plans/rehearsal-8pm.yaml",
        "--out", "/runs", "--yes"]
    files = client.CoreV1Api(accounts.api).read_namespaced_config_map(
        "chaoskit-rehearsal-experiment", NS).data
    assert {"plans_rehearsal-8pm.yaml", "triple-peak-refund-storm.yaml",
            "systems_reference-stack.yaml"} <= set(files)  # the plan and what it includes
    listed = chaoskit("schedule", "list", *kube)
    assert listed.returncode == 0 and "rehearsal: plans/rehearsal-8pm.yaml at '0 19 * * 5'" in (
        listed.stdout)
    deleted = chaoskit("schedule", "delete", "rehearsal", *kube)
    assert deleted.returncode == 0 and f"deleted CronJob {NS}/chaoskit-rehearsal" in (
        deleted.stdout)
    assert chaoskit("schedule", "delete", "rehearsal", *kube).returncode == 4  # nothing left


def test_a_schedule_firing_outside_its_window_is_refused_and_nothing_applied(
        accounts: Accounts, tmp_path: Path) -> None:
    plan = plan_with_schedule(tmp_path, "0 3 * * *", "Mon-Fri 09:00-18:00")
    refused = chaoskit("schedule", "apply", str(plan), "--name", "night", "--kubeconfig",
                       str(accounts.scheduler), "--namespace", NS)
    assert refused.returncode == 2
    assert 'outside the allowed window "Mon-Fri 09:00-18:00"' in refused.stderr
    assert "03:00" in refused.stderr
    names = [c.metadata.name for c in client.BatchV1Api(accounts.api).list_namespaced_cron_job(
        NS).items]
    assert "chaoskit-night" not in names
