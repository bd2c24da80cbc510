"""The scheduled run's pod: run chaoskit, then keep its summary in a ConfigMap named after the Job.

`python -m chaoskit.platforms.kubernetes.schedule_pod --runs /runs -- chaoskit run FILE ...`
(see schedule.py). The run's exit status is the pod's; a summary that cannot be stored is said
on stderr and does not change it. The summary is `chaoskit report --json` of the journal the
run wrote, plus the Job and schedule; with no journal, what is known (the exit status).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from chaoskit.platforms.kubernetes.cluster import ClusterApi
from chaoskit.platforms.kubernetes.schedule import (
    JOB,
    JOB_NAME_ENV,
    NAMESPACE_ENV,
    SUMMARY_KEY,
    labels,
    selector,
    summary_name,
)

TAIL_LINES, MAX_SAID = 20, 2000  # of the run's stderr, kept for a summary without a journal


def newest_journal(runs: Path, since: float) -> Path | None:
    """The journal written by this run (a game day's: its plan journal): the newest one touched
    since it started."""
    journals = [j for pattern in ("*/journal.jsonl", "*/plan.jsonl") for j in runs.glob(pattern)
                if j.stat().st_mtime >= since - 1]
    return max(journals, key=lambda j: j.stat().st_mtime, default=None)


def summarize(chaoskit: str, journal: Path | None, exit_code: int,
              said: str = "") -> dict[str, Any]:
    """`chaoskit report --json JOURNAL`, or what is known when that cannot say."""
    if journal is not None:
        try:
            shown = subprocess.run([chaoskit, "report", "--json", str(journal)],
                                   capture_output=True, text=True, timeout=120, check=False)
            summary: dict[str, Any] = json.loads(shown.stdout)
            return {**summary, "journal": str(journal)}
        except ValueError:
            error = f"chaoskit report --json failed: {shown.stderr.strip()[-500:]}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = f"chaoskit report --json could not run: {exc}"
    else:
        error = f"the run wrote no journal: {said[-MAX_SAID:]}" if said else (
            "the run wrote no journal (it stopped before starting: see the pod's log)")
    status = "error" if exit_code else "unknown"
    return {"status": status, "exit_code": exit_code, "error": error, "verdicts": []}


def summary_configmap(job: str, schedule: str, summary: dict[str, Any],
                      owner_uid: str = "") -> dict[str, Any]:
    """The ConfigMap keeping one run's summary; owned by its Job when the uid is known."""
    metadata: dict[str, Any] = {"name": summary_name(job), "labels": {**labels(schedule),
                                                                      JOB: job}}
    if owner_uid:
        metadata["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": job,
                                        "uid": owner_uid}]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": {SUMMARY_KEY: json.dumps(summary, indent=1, default=str)}}


def keep_summary(cluster: ClusterApi, namespace: str, job: str, schedule: str,
                 summary: dict[str, Any]) -> str:
    """Store the summary; the name of the ConfigMap."""
    jobs = cluster.list_objects("Job", namespace, selector(schedule) if schedule else "")
    owner = next((j.uid for j in jobs if j.name == job), "")
    body = summary_configmap(job, schedule, {**summary, "job": job, "schedule": schedule}, owner)
    cluster.create_object("ConfigMap", namespace, body)
    return str(body["metadata"]["name"])


def run(command: list[str]) -> tuple[int, str]:
    """The command's exit status and the last lines of its stderr (also passed on to the log:
    a run refused before it starts, outside its window say, says why only there)."""
    if not command:
        print("schedule_pod: no command after --", file=sys.stderr)
        return 2, "no command"
    try:
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as exc:
        print(f"schedule_pod: cannot start {command[0]}: {exc}", file=sys.stderr)
        return 127, f"cannot start {command[0]}: {exc}"
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    assert process.stderr is not None
    for line in process.stderr:
        sys.stderr.write(line)
        tail.append(line)
    return process.wait(), "".join(tail).strip()


def _own_namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.is_file() else "default"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="schedule_pod")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--chaoskit", default=str(Path(sys.executable).parent / "chaoskit"))
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    started = time.time()
    exit_code, said = run(command)
    summary = summarize(args.chaoskit, newest_journal(args.runs, started), exit_code, said)
    job = os.environ.get(JOB_NAME_ENV, "")
    if not job:
        print("schedule_pod: no job name ($CHAOSKIT_JOB_NAME): summary not kept", file=sys.stderr)
        return exit_code
    try:
        from chaoskit.platforms.kubernetes.kube import KubeCluster, api_client

        namespace = os.environ.get(NAMESPACE_ENV) or _own_namespace()
        with api_client(None, None) as api:
            kept = keep_summary(KubeCluster(api), namespace, job,
                                os.environ.get("CHAOSKIT_SCHEDULE", ""), summary)
        print(f"summary kept in ConfigMap {namespace}/{kept}")
    except Exception as exc:  # the run's outcome stands; only its copy in the cluster is lost
        print(f"schedule_pod: cannot keep the summary: {exc}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
