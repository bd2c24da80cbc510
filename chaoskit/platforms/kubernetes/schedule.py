"""Scheduled game days on a cluster: a CronJob running chaoskit as the runner, files in a ConfigMap.

`render` builds, without I/O, the ConfigMap `chaoskit-<name>-experiment` (the experiment and
the files it includes, mounted read-only at /experiment) and the CronJob `chaoskit-<name>`
(concurrencyPolicy Forbid, the schedule's time zone). Its Job runs, from the stack image, as the
least-privilege `chaoskit-runner` ServiceAccount, `chaoskit run /experiment/<file> --out /runs`
wrapped by `schedule_pod`, which afterwards keeps `chaoskit report --json` in the ConfigMap
`<job>-summary` (owned by the Job, so the CronJob's history limit bounds both). Journals and
reports go to /runs: a PersistentVolumeClaim when one is named, else an emptyDir that ends with
the pod (the summary is then what remains). Everything carries `app.kubernetes.io/managed-by:
chaoskit` and `chaoskit.io/schedule: <name>`, which is how `list` and `delete` find it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from chaoskit.errors import PlatformError
from chaoskit.platforms.kubernetes.cluster import ClusterApi
from chaoskit.schedules import parse_cron, zone

MANAGED_BY, CHAOSKIT = "app.kubernetes.io/managed-by", "chaoskit"
SCHEDULE = "chaoskit.io/schedule"   # label: the schedule's name
JOB = "chaoskit.io/job"             # label on a summary ConfigMap: the Job it reports on
CRON, TIMEZONE = "chaoskit.io/cron", "chaoskit.io/timezone"  # annotations, for `list`
EXPERIMENT, WINDOW = "chaoskit.io/experiment", "chaoskit.io/window"
RUNNER = "chaoskit-runner"
EXPERIMENT_DIR, RUNS_DIR = "/experiment", "/runs"
BIN = "/opt/chaoskit/bin"           # the stack image's venv: `chaoskit` and its python
JOB_NAME_ENV, NAMESPACE_ENV = "CHAOSKIT_JOB_NAME", "POD_NAMESPACE"
SUMMARY_KEY = "summary.json"
UID = 10001                         # the image's user (k8s/Containerfile)
MAX_NAME = 43                       # chaoskit-<name> <= 52: CronJob names leave room for Jobs'
MAX_FILES_BYTES = 900_000           # a ConfigMap holds at most 1 MiB, metadata included
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@dataclass(frozen=True)
class ScheduledRun:
    """What to run when: the experiment `experiment` among `files` ((relative path, text)
    pairs), on `cron` in `timezone`, from `image`; `args` go after `chaoskit run FILE`."""

    name: str
    experiment: str
    files: tuple[tuple[str, str], ...]
    cron: str
    image: str
    timezone: str = "UTC"
    window: str | None = None
    args: tuple[str, ...] = ()
    claim: str | None = None          # a PersistentVolumeClaim for /runs (journals, history)
    keep: int = 10                    # finished Jobs (and their summaries) kept, each outcome
    deadline: int | None = None       # activeDeadlineSeconds of each run's Job
    env: dict[str, str] = field(default_factory=dict)  # e.g. CHAOSKIT_CODE_VERSION
    suspend: bool = False
    command: str = "run"              # the chaoskit subcommand that takes the experiment file


def cronjob_name(name: str) -> str:
    return f"chaoskit-{name}"


def files_name(name: str) -> str:
    return f"chaoskit-{name}-experiment"


def summary_name(job: str) -> str:
    return f"{job}-summary"


def selector(name: str | None = None) -> str:
    return f"{MANAGED_BY}={CHAOSKIT}" + (f",{SCHEDULE}={name}" if name else "")


def labels(name: str) -> dict[str, str]:
    return {MANAGED_BY: CHAOSKIT, SCHEDULE: name}


def _check(run: ScheduledRun) -> None:
    if not _NAME.match(run.name) or len(run.name) > MAX_NAME:
        raise PlatformError(f"schedule name {run.name!r} cannot name a CronJob",
                            hint=f"use lowercase letters, digits and '-', at most {MAX_NAME} "
                                 "characters (the experiment's metadata.name usually fits)")
    parse_cron(run.cron)
    zone(run.timezone)
    paths = [path for path, _ in run.files]
    if run.experiment not in paths:
        raise PlatformError(f"the experiment {run.experiment!r} is not among the files given",
                            hint="pass the experiment file itself first, then what it includes")
    total = sum(len(text.encode()) for _, text in run.files)
    if total > MAX_FILES_BYTES:
        raise PlatformError(f"the experiment and its files are {total} bytes; a ConfigMap holds "
                            f"less than 1 MiB", hint="keep large data out of the experiment")


def _key(path: str) -> str:
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise PlatformError(f"file {path!r} must be a relative path inside the experiment's "
                            "folder", hint="name included files relative to the experiment")
    return re.sub(r"[^-._a-zA-Z0-9]", "_", path)


def _items(run: ScheduledRun) -> list[dict[str, str]]:
    items = [{"key": _key(path), "path": path} for path, _ in run.files]
    keys = [item["key"] for item in items]
    if len(set(keys)) != len(keys):
        raise PlatformError("two included files map to the same ConfigMap key",
                            hint="rename one of them: '/' and other signs become '_'")
    return items


def files_configmap(run: ScheduledRun) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": files_name(run.name), "labels": labels(run.name)},
            "data": {_key(path): text for path, text in run.files}}


def _container(run: ScheduledRun) -> dict[str, Any]:
    chaoskit = [f"{BIN}/chaoskit", run.command, f"{EXPERIMENT_DIR}/{run.experiment}",
                "--out", RUNS_DIR, *(["--display", "plain"] if run.command == "run" else []),
                *run.args]
    wrapper = [f"{BIN}/python", "-m", "chaoskit.platforms.kubernetes.schedule_pod",
               "--runs", RUNS_DIR, "--"]
    env = [{"name": JOB_NAME_ENV, "valueFrom": {"fieldRef": {
               "fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}},
           {"name": NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
           {"name": "CHAOSKIT_SCHEDULE", "value": run.name}, {"name": "HOME", "value": "/tmp"},
           *({"name": k, "value": v} for k, v in sorted(run.env.items()))]
    mounts = [{"name": "experiment", "mountPath": EXPERIMENT_DIR, "readOnly": True},
              {"name": "runs", "mountPath": RUNS_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
    return {"name": "chaoskit", "image": run.image, "imagePullPolicy": "IfNotPresent",
            "command": [*wrapper, *chaoskit], "workingDir": RUNS_DIR, "env": env,
            "volumeMounts": mounts, "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
            "securityContext": {"allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}}}


def _pod(run: ScheduledRun) -> dict[str, Any]:
    runs: dict[str, Any] = ({"persistentVolumeClaim": {"claimName": run.claim}} if run.claim
                            else {"emptyDir": {}})
    volumes = [{"name": "experiment", "configMap": {"name": files_name(run.name),
                                                    "items": _items(run)}},
               {"name": "runs", **runs}, {"name": "tmp", "emptyDir": {}}]
    return {"metadata": {"labels": labels(run.name)}, "spec": {
        "serviceAccountName": RUNNER, "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "fsGroup": UID},
        "containers": [_container(run)], "volumes": volumes}}


def cronjob(run: ScheduledRun) -> dict[str, Any]:
    notes = {CRON: run.cron, TIMEZONE: run.timezone, EXPERIMENT: run.experiment,
             **({WINDOW: run.window} if run.window else {})}
    job: dict[str, Any] = {"backoffLimit": 0, "template": _pod(run)}  # a game day is not retried
    if run.deadline:
        job["activeDeadlineSeconds"] = int(run.deadline)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": cronjob_name(run.name), "labels": labels(run.name),
                         "annotations": notes},
            "spec": {"schedule": run.cron, "timeZone": run.timezone,
                     "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 300,
                     "suspend": run.suspend, "successfulJobsHistoryLimit": run.keep,
                     "failedJobsHistoryLimit": run.keep,
                     "jobTemplate": {"metadata": {"labels": labels(run.name)}, "spec": job}}}


def render(run: ScheduledRun) -> list[dict[str, Any]]:
    """The objects of one schedule, in the order they are applied (pure; checks the inputs)."""
    _check(run)
    return [files_configmap(run), cronjob(run)]


def apply(cluster: ClusterApi, namespace: str, run: ScheduledRun) -> list[str]:
    """Create the schedule, or replace it in place (its Jobs and summaries stay)."""
    done = []
    for doc in render(run):
        kind, name = doc["kind"], doc["metadata"]["name"]
        existing = {o.name for o in cluster.list_objects(kind, namespace, selector(run.name))}
        if name in existing:
            cluster.replace_object(kind, namespace, name, doc)
            done.append(f"{kind} {namespace}/{name} replaced")
        else:
            cluster.create_object(kind, namespace, doc)
            done.append(f"{kind} {namespace}/{name} created")
    return done


def delete(cluster: ClusterApi, namespace: str, name: str) -> list[str]:
    """Remove the CronJob, its Jobs (their pods with them) and every ConfigMap of the schedule;
    [] when there was no such schedule."""
    found = [(kind, item.name) for kind in ("CronJob", "Job", "ConfigMap")
             for item in cluster.list_objects(kind, namespace, selector(name))]
    for kind, item in found:  # listed first: deleting the CronJob makes the collector take
        cluster.delete_object(kind, namespace, item)  # its Jobs and their summaries (404: done)
    return [f"{kind} {namespace}/{item}" for kind, item in found]


@dataclass(frozen=True)
class ScheduleView:
    name: str
    cron: str
    timezone: str
    experiment: str
    window: str | None
    summaries: tuple[dict[str, Any], ...]  # the kept runs' summaries, newest first


def _summary(data: dict[str, str]) -> dict[str, Any] | None:
    try:
        found = json.loads(data.get(SUMMARY_KEY, ""))
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def schedules(cluster: ClusterApi, namespace: str) -> list[ScheduleView]:
    """Every chaoskit schedule in the namespace, with the summaries of its kept runs."""
    maps = cluster.list_objects("ConfigMap", namespace, selector())
    views = []
    for item in sorted(cluster.list_objects("CronJob", namespace, selector()),
                       key=lambda o: o.name):
        name = item.labels.get(SCHEDULE, "")
        kept = sorted((m for m in maps if m.labels.get(SCHEDULE) == name and JOB in m.labels),
                      key=lambda m: m.labels[JOB], reverse=True)
        found = (_summary(m.data) for m in kept)
        views.append(ScheduleView(name, item.annotations.get(CRON, "?"),
                                  item.annotations.get(TIMEZONE, "UTC"),
                                  item.annotations.get(EXPERIMENT, "?"),
                                  item.annotations.get(WINDOW),
                                  tuple(s for s in found if s is not None)))
    return views


def render_schedules(views: list[ScheduleView]) -> list[str]:
    """Terminal lines for `chaoskit schedule list`."""
    if not views:
        return ["no chaoskit schedules in this namespace"]
    lines = []
    for view in views:
        window = f", window {view.window!r}" if view.window else ""
        lines.append(f"{view.name}: {view.experiment} at '{view.cron}' ({view.timezone}){window}")
        for summary in view.summaries:
            lines.append(f"    {summary.get('job', '?')}: {summary.get('status', '?')} "
                         f"(exit {summary.get('exit_code', '?')}, run {summary.get('run_id')})")
    return lines
