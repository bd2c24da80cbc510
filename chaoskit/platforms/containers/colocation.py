"""Offline (batch) work next to an online container: a batch container on the same CPUs.

The batch container gets the online container's cpuset (all CPUs when it has none) and joins its
first network, so it competes for exactly the online container's CPUs and the runner reads its
/metrics at its address. With isolation its CPU weight is cpu.shares 2 (what Kubernetes gives a
BestEffort pod) against the online container's (1024 by default); without, the same weight.
It runs `work: reconciliation` (the stack's settlement job, `python -m chaoskit.stack offline`,
against CHAOSKIT_DATABASE_URL) or `work: burner` (`python -m chaoskit.lab.offline`), so its image
must hold chaoskit: the payment stack's image does. `timeout(1)` bounds it by the work's lifetime
even if no revert comes.
"""

from __future__ import annotations

import re
from typing import Any

import docker
from docker.errors import APIError, NotFound

from chaoskit.errors import PlatformError
from chaoskit.platforms.abilities import OfflineProcess, OfflineWork
from chaoskit.platforms.containers.engine import safe_ulimits
from chaoskit.platforms.containers.views import (
    CHANGE,
    COLOCATE,
    NODE,
    RUN,
    WORK,
    ContainerView,
)

OFFLINE_SHARES = 2
ONLINE_SHARES = 1024  # what an engine gives a container that asks for no weight
PORT = 8080  # the batch's /metrics and /healthz
MODULES = {"reconciliation": ["chaoskit.stack", "offline"], "burner": ["chaoskit.lab.offline"]}


def container_name(tag: str, node: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"chaoskit-offline-{tag}-{node}")


def command(work: OfflineWork) -> list[str]:
    """The batch's command line: the work, bounded by its lifetime (`timeout` is the
    entrypoint, the rest its arguments)."""
    if work.work not in MODULES:
        raise PlatformError(f"unknown offline work '{work.work}'",
                            hint=f"use one of: {', '.join(MODULES)}")
    body = ["python", "-m", *MODULES[work.work]]
    if work.work == "burner":
        body += ["--cpu", str(work.cpu), "--memory", str(work.memory),
                 "--seconds", f"{work.lifetime:g}"]
    return ["timeout", "-k", "3", f"{work.lifetime + 5:g}", *body]


def environment(work: OfflineWork, name: str, node: str, database: str | None,
                extra: dict[str, str]) -> dict[str, str]:
    env = {"CHAOSKIT_LISTEN": f"0.0.0.0:{PORT}", "CHAOSKIT_NODE": node,
           "CHAOSKIT_INSTANCE": name}
    if work.work == "reconciliation":
        # scale 1: the window is given in real seconds
        env |= {"CHAOSKIT_TIME_SCALE": "1", "CHAOSKIT_OFFLINE_WINDOW": f"{work.window:g}s",
                "CHAOSKIT_OFFLINE_LINGER": f"{work.lifetime:g}s"}
        env |= {"CHAOSKIT_DATABASE_URL": database} if database else {}
        env |= {"CHAOSKIT_OFFLINE_UNITS": str(work.units)} if work.units else {}
        env |= {"CHAOSKIT_OFFLINE_ROUNDS": str(work.rounds)} if work.rounds else {}
    return env | extra


def weights(online: ContainerView, isolation: bool, cpus: str) -> dict[str, Any]:
    """cpuset and cpu_shares of the batch next to `online`."""
    shares = OFFLINE_SHARES if isolation else (online.cpu_shares or ONLINE_SHARES)
    return {"cpuset_cpus": online.cpuset or cpus, "cpu_shares": shares}


def start(client: docker.DockerClient, online: ContainerView, node: str, tag: str,
          work: OfflineWork, run: str, image: str, env: dict[str, str]) -> str:
    """Create and start the batch container; its name is the offline process id."""
    name = container_name(tag, node)
    if not online.running:
        raise PlatformError(f"node {node} (container {online.name}) is {online.status}",
                            hint="offline work goes next to a running container")
    network = online.endpoints[0].network if online.endpoints else None
    labels = {RUN: run, CHANGE: "offline", COLOCATE: tag, NODE: node, WORK: work.work}
    try:
        client.containers.run(
            image, entrypoint=command(work)[:1], command=command(work)[1:], name=name,
            detach=True,
            environment=env, labels=labels, ulimits=safe_ulimits(), network=network,
            network_disabled=network is None,
            **weights(online, work.isolation, all_cpus(client)))
    except APIError as exc:
        raise PlatformError(f"could not start offline work {name}: {exc.explanation or exc}",
                            hint=f"check the image {image} holds chaoskit, or set "
                                 "target.offline_image") from exc
    return name


def all_cpus(client: docker.DockerClient) -> str:
    return f"0-{max(1, int(client.info().get('NCPU') or 1)) - 1}"


def views(client: docker.DockerClient, tag: str | None = None,
          run: str | None = None) -> list[ContainerView]:
    wanted = [f"{CHANGE}=offline"] + ([f"{COLOCATE}={tag}"] if tag else [])
    wanted += [f"{RUN}={run}"] if run else []
    found = [ContainerView.of(c.attrs)
             for c in client.containers.list(all=True, filters={"label": wanted})]
    return [v for v in found if (tag is None or v.labels.get(COLOCATE) == tag)
            and (run is None or v.labels.get(RUN) == run)]


def processes(client: docker.DockerClient, tag: str) -> list[OfflineProcess]:
    return [OfflineProcess(v.name, v.labels.get(NODE, ""), v.labels.get(WORK, ""),
                           v.status in ("running", "paused"), _metrics(v), v.started_at,
                           [f"cpuset.cpus {v.cpuset}", f"cpu.shares {v.cpu_shares}"])
            for v in views(client, tag)]


def _metrics(view: ContainerView) -> str:
    if view.labels.get(WORK) != "reconciliation" or not view.address:
        return ""
    return f"http://{view.address}:{PORT}/metrics"


def stop(client: docker.DockerClient, tag: str) -> list[str]:
    """Remove the tag's batch containers (killed first); their names."""
    stopped = []
    for view in views(client, tag):
        try:
            client.api.remove_container(view.id, force=True)
        except NotFound:
            continue
        stopped.append(view.name)
    return stopped


def residue(client: docker.DockerClient, tag: str) -> list[str]:
    return [f"offline container {v.name} ({v.status}, run {v.labels.get(RUN, '?')}) remains"
            for v in views(client, tag)]


def cpu_seconds(client: docker.DockerClient, name: str) -> float:
    """CPU seconds the container used so far, from the engine's stats."""
    try:
        stats = client.api.stats(name, stream=False, one_shot=True)
    except NotFound as exc:
        raise PlatformError(f"no offline container {name}",
                            hint="it was removed (reverted) before its CPU was read") from exc
    usage = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
    return float(usage) / 1e9
