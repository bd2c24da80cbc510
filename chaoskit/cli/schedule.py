"""`chaoskit schedule apply | list | delete`: game days that run themselves on a cluster."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

EPILOG = """\
The file's `schedule:` says when: cron (five fields) in its time zone, and the window it may run
in (a schedule firing outside the window is refused). Each firing runs `chaoskit run` (or
`chaoskit gameday --yes` for a plan) in the cluster as the least-privilege chaoskit-runner
ServiceAccount (k8s/rbac), from the stack image, with the file and what it includes in a
ConfigMap; concurrencyPolicy Forbid; each run's summary is kept in a ConfigMap, its journals
and reports on --claim (a PersistentVolumeClaim) when given. Applying needs the
chaoskit-scheduler Role (k8s/rbac/scheduler.yaml).

examples:
  chaoskit schedule apply experiments/k8s-node-loss-final-payment-window.yaml --namespace payments
  chaoskit schedule apply experiments/plans/rehearsal-8pm.yaml --claim chaoskit-runs
  chaoskit schedule list --namespace payments
  chaoskit schedule delete k8s-node-loss-final-payment-window --namespace payments
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("schedule", help="run experiments or plans on a schedule in a cluster",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    verbs = p.add_subparsers(dest="schedule_command", required=True, metavar="COMMAND")
    apply = verbs.add_parser("apply", help="create or replace the CronJob of an experiment or "
                             "plan")
    apply.add_argument("file", metavar="FILE", help="an experiment or a GamePlan with schedule:")
    apply.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="a parameter's value for every scheduled run (repeatable)")
    apply.add_argument("--name", help="the schedule's name (default: the file's metadata.name)")
    apply.add_argument("--image", help="the image with chaoskit (default: the stack image)")
    apply.add_argument("--claim", metavar="PVC",
                       help="keep journals, reports and the history on this claim")
    apply.add_argument("--keep", type=int, default=10, help="finished runs kept (default 10)")
    apply.add_argument("--deadline", type=int, metavar="SECONDS",
                       help="stop a run that takes longer (its faults are reverted)")
    apply.add_argument("--suspend", action="store_true", help="create it suspended")
    for verb in (apply, _verb(verbs, "list", "the schedules and their recent runs"),
                 _verb(verbs, "delete", "remove a schedule, its Jobs and its ConfigMaps")):
        verb.add_argument("--namespace", "-n", help="default: the context's namespace")
        verb.add_argument("--context", help="kubeconfig context (default: current)")
        verb.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    apply.set_defaults(func=cmd_apply)


def _verb(verbs: Any, name: str, text: str) -> Any:
    verb = verbs.add_parser(name, help=text, description=text)
    if name == "delete":
        verb.add_argument("name", help="the schedule's name (see `schedule list`)")
        verb.set_defaults(func=cmd_delete)
    else:
        verb.set_defaults(func=cmd_list)
    return verb


def _cluster(args: argparse.Namespace) -> tuple[Any, Any, str]:
    from chaoskit.platforms.kubernetes.kube import KubeCluster, api_client
    from chaoskit.platforms.kubernetes.recovery import context_namespace
    api = api_client(args.kubeconfig, args.context)
    return api, KubeCluster(api), args.namespace or context_namespace(args.context)


def scheduled_run(args: argparse.Namespace, now: datetime | None = None) -> Any:
    """The ScheduledRun of a file: its schedule checked against its window (nothing applied
    when a firing falls outside it)."""
    from chaoskit.cli.experiment import sets_of
    from chaoskit.platforms.kubernetes.schedule import ScheduledRun
    from chaoskit.platforms.kubernetes.workloads import IMAGE
    from chaoskit.schedules import ScheduleError, check_schedule
    from chaoskit.spec.documents import bundle, load_any
    from chaoskit.spec.models import Experiment
    from chaoskit.spec.plan_loader import LoadedPlan
    sets = sets_of(args.set)
    loaded = load_any(args.file, sets)
    if isinstance(loaded, LoadedPlan):
        name, schedule, command = loaded.plan.metadata.name, loaded.plan.schedule, "gameday"
    elif isinstance(loaded, Experiment):
        name, schedule, command = loaded.metadata.name, loaded.schedule, "run"
    else:
        raise ScheduleError(f"{args.file} is a System file: nothing to schedule",
                            hint="schedule an experiment or a plan that includes it")
    if schedule is None or schedule.cron is None:
        raise ScheduleError(f"{args.file} has no schedule.cron: nothing says when it runs",
                            hint='add e.g. schedule: {cron: "0 20 * * 5", timezone: '
                                 'Asia/Shanghai, window: "Fri 18:00-23:00"}', field="schedule")
    why = check_schedule(schedule.cron, schedule.timezone, schedule.window,
                         now or datetime.now(UTC))
    if why is not None:
        raise ScheduleError(f"refused: {why}",
                            hint="move the cron inside the window, or widen schedule.window")
    entry, files = bundle(args.file, sets)
    extra = [arg for pair in sets.items() for arg in ("--set", "=".join(pair))]
    if command == "gameday":
        extra.append("--yes")
    return ScheduledRun(name=args.name or name, experiment=entry, files=tuple(files),
                        cron=schedule.cron, image=args.image or IMAGE,
                        timezone=schedule.timezone, window=schedule.window, args=tuple(extra),
                        claim=args.claim, keep=args.keep, deadline=args.deadline,
                        suspend=args.suspend, command=command)


def cmd_apply(args: argparse.Namespace) -> int:
    from chaoskit.platforms.kubernetes import schedule
    from chaoskit.schedules import preview
    run = scheduled_run(args)
    api, cluster, namespace = _cluster(args)
    with api:
        for line in schedule.apply(cluster, namespace, run):
            print(line)
    print(f"next runs: {', '.join(preview(run.cron, run.timezone, datetime.now(UTC)))}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from chaoskit.platforms.kubernetes import schedule
    api, cluster, namespace = _cluster(args)
    with api:
        for line in schedule.render_schedules(schedule.schedules(cluster, namespace)):
            print(line)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from chaoskit.platforms.kubernetes import schedule
    api, cluster, namespace = _cluster(args)
    with api:
        gone = schedule.delete(cluster, namespace, args.name)
    for line in gone:
        print(f"deleted {line}")
    if not gone:
        print(f"no schedule {args.name} in {namespace}")
        return 4
    return 0
