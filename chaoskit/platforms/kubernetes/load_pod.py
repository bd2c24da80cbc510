"""One pod of the load Indexed Job: run the load worker on this index's share, report back.

`python -m chaoskit.platforms.kubernetes.load_pod`, configured by the Job's environment
(see load_job). The worker process speaks its stdin/stdout protocol; this pod starts it at the
shared wall-clock start, waits for its `done` report and stores that in a ConfigMap.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Any

from chaoskit.load.plan import LoadPlan
from chaoskit.platforms.kubernetes.load_job import COUNTS, PLAN_ENV, REPORT_ENV, START_ENV


def run_share(plan: LoadPlan, start_at: float) -> dict[str, Any]:
    """Drive this pod's share through a local worker process; its final report."""
    worker = subprocess.Popen([sys.executable, "-m", "chaoskit.load.worker_process"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(plan.to_json() + "\n")
    worker.stdin.flush()
    report: dict[str, Any] = {}
    totals = dict.fromkeys(COUNTS, 0)
    for line in worker.stdout:
        message = json.loads(line)
        if message.get("type") == "window":  # per-flow lists; the runner wants the sums
            for name in COUNTS:
                totals[name] += sum(message[name])
        elif message.get("type") == "ready":
            # monotonic clocks differ between machines; the wall clock is what pods share
            t0 = time.monotonic() + max(0.0, start_at - time.time())
            worker.stdin.write(f"go {t0}\n")
            worker.stdin.flush()
        elif message.get("type") == "done":
            report = {**message, "totals": totals, "index": plan.worker}
            break
    worker.stdin.close()
    worker.wait(timeout=30)
    return report


def main() -> int:
    from kubernetes import client

    from chaoskit.platforms.kubernetes.kube import api_client
    from chaoskit.platforms.kubernetes.load_job import report_configmap

    index = int(os.environ["JOB_COMPLETION_INDEX"])
    plan = dataclasses.replace(LoadPlan.from_json(os.environ[PLAN_ENV]), worker=index)
    report = run_share(plan, float(os.environ[START_ENV]))
    namespace = os.environ.get("POD_NAMESPACE") or _own_namespace()
    with api_client(None, None) as api:
        core: Any = client.CoreV1Api(api)
        core.create_namespaced_config_map(
            namespace, report_configmap(os.environ[REPORT_ENV], index, report))
    return 0 if report else 1


def _own_namespace() -> str:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    with open(path) as handle:
        return handle.read().strip()


if __name__ == "__main__":
    sys.exit(main())
