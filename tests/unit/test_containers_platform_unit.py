"""The containers platform's pure parts: which containers are nodes and what they are called,
marks, residue descriptions, replica and batch settings, and the platform's description."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from chaoskit.errors import PlatformError
from chaoskit.platforms import abilities
from chaoskit.platforms.abilities import OfflineWork
from chaoskit.platforms.containers import capacity, colocation, nodes
from chaoskit.platforms.containers.checks import preflight, selection_problems
from chaoskit.platforms.containers.inventory import Inventory
from chaoskit.platforms.containers.marks import Mark
from chaoskit.platforms.containers.platform import ContainersConfig, ContainersPlatform
from chaoskit.platforms.containers.recovery import ContainersRecovery, recover_containers
from chaoskit.platforms.containers.views import (
    ContainerView,
    Endpoint,
    Selection,
    node_names,
)

ENGINE = "unix:///tmp/chaoskit-unit-no-engine.sock"


def attrs(name: str, *, service: str | None = None, project: str | None = "shop",
          number: int = 1, status: str = "running", labels: dict[str, str] | None = None,
          ident: str | None = None, networks: dict[str, str] | None = None) -> dict[str, Any]:
    """An inspect document as the engine returns it (the fields the platform reads)."""
    ident = ident or (name.encode().hex() * 8)[:64]
    compose = {"com.docker.compose.project": project, "com.docker.compose.service": service,
               "com.docker.compose.container-number": str(number),
               "com.docker.compose.oneoff": "False"} if service else {}
    nets = networks if networks is not None else {"shop_default": "198.19.1.5"}
    return {"Id": ident, "Name": f"/{name}",
            "State": {"Status": "paused" if status == "paused" else status,
                      "Running": status in ("running", "paused"), "Paused": status == "paused",
                      "StartedAt": "2026-11-30T07:37:03.123456789Z"},
            "Config": {"Labels": {**compose, **(labels or {})}, "StopTimeout": 5},
            "HostConfig": {"CpusetCpus": "0", "CpuShares": 0},
            "NetworkSettings": {"Networks": {
                net: {"IPAddress": ip, "MacAddress": "02:42:c6:13:01:05",
                      "Aliases": [service or name, ident[:12]]} for net, ip in nets.items()}}}


def view(*args: Any, **kwargs: Any) -> ContainerView:
    return ContainerView.of(attrs(*args, **kwargs))


def replica(name: str, of: str = "api", project: str | None = "shop") -> ContainerView:
    labels = {"io.chaoskit.change": "replica", "io.chaoskit.node": name,
              "io.chaoskit.replica-of": of, "io.chaoskit.run": "run-1"}
    return view(f"shop-{name}", service=of if project else None, project=project, number=9,
                labels=labels)


# -- views ------------------------------------------------------------------------------------
def test_a_view_reads_state_addresses_and_aliases_without_the_short_id() -> None:
    paused = view("shop_api_1", service="api", status="paused")
    assert (paused.status, paused.running, paused.address) == ("paused", False, "198.19.1.5")
    assert paused.endpoints == (Endpoint("shop_default", "198.19.1.5", "02:42:c6:13:01:05",
                                         ("api",)),)
    assert paused.started_at == pytest.approx(1796024223.123456, abs=1e-3)
    assert paused.stop_timeout == 5.0
    assert view("gone", status="exited", networks={}).address == ""


def test_compose_nodes_are_named_by_service_and_numbered_when_a_service_has_several() -> None:
    views = [view("shop_api_1", service="api"), view("shop_worker_1", service="worker"),
             view("shop_worker_2", service="worker", number=2),
             view("other_api_1", service="api", project="other"),
             view("shop_run_1", service="api", labels={"com.docker.compose.oneoff": "True"})]
    names = node_names(views, Selection(project="shop"))
    assert {n: v.name for n, v in names.items()} == {
        "api": "shop_api_1", "worker-1": "shop_worker_1", "worker-2": "shop_worker_2"}
    assert list(node_names(views, Selection(project="shop", services=("api",)))) == ["api"]


def test_named_and_labelled_containers_are_named_by_container_name() -> None:
    views = [view("db", project=None), view("cache", labels={"tier": "edge"}, project=None),
             view("proxy", labels={"tier": "edge"}, project=None)]
    assert list(node_names(views, Selection(containers=("db",)))) == ["db"]
    assert list(node_names(views, Selection(labels={"tier": "edge"}))) == ["cache", "proxy"]
    assert Selection(labels={"tier": "edge"}).label_filters() == ["tier=edge"]
    assert Selection(project="shop", labels={"a": "b"}).label_filters() == [
        "com.docker.compose.project=shop", "a=b"]
    assert Selection().empty and not Selection(containers=("db",)).empty


def test_replicas_are_nodes_of_their_capacity_and_batches_never_are() -> None:
    batch = view("chaoskit-offline-x-api", project=None, labels={
        "io.chaoskit.change": "offline", "io.chaoskit.colocate": "x"})
    views = [view("shop_api_1", service="api"), replica("api-replica-1"),
             replica("api-replica-2", project="other"), batch]
    assert list(node_names(views, Selection(project="shop", capacity="api"))) == [
        "api", "api-replica-1"]
    assert list(node_names(views, Selection(project="shop"))) == ["api"]  # no capacity: none


# -- marks and residue ------------------------------------------------------------------------
MARK = Mark("run-1", "isolate", "f" * 64, "shop_bank_1", "bank",
            (Endpoint("shop_default", "198.19.1.7", "02:42:c6:13:01:07", ("bank",)),))


def test_a_mark_survives_its_labels_and_names_itself() -> None:
    assert Mark.of(MARK.labels()) == MARK
    assert MARK.name == "chaoskit-lost-ffffffffffff"
    assert MARK.labels()["io.chaoskit.run"] == "run-1"
    assert MARK.labels()["io.chaoskit.change"] == "node-loss"
    assert "isolate mark on container shop_bank_1" in MARK.describe()


class FakeVolumes:
    """The engine's volume listing, at the docker client seam."""

    def __init__(self, found: list[Mark]) -> None:
        self.found = found

    def list(self, filters: dict[str, list[str]]) -> list[SimpleNamespace]:
        wanted = dict(item.split("=", 1) for item in filters["label"])
        return [SimpleNamespace(attrs={"Labels": m.labels()}) for m in self.found
                if all(m.labels().get(k) == v for k, v in wanted.items())]


def client_with(*found: Mark) -> Any:
    return SimpleNamespace(volumes=FakeVolumes(list(found)))


def test_residue_names_marks_paused_stopped_and_disconnected_containers() -> None:
    bank = view("shop_bank_1", service="bank", ident="f" * 64, networks={})
    assert nodes.residue(client_with(MARK), bank, "bank") == [
        MARK.describe(), "container shop_bank_1 is disconnected from shop_default"]
    paused = view("shop_api_1", service="api", status="paused")
    assert nodes.residue(client_with(), paused, "api") == ["container shop_api_1 is paused"]
    killed = view("shop_api_1", service="api", status="exited")
    assert nodes.residue(client_with(), killed, "api") == ["container shop_api_1 is exited"]
    assert nodes.residue(client_with(), view("shop_api_1", service="api"), "api") == []
    assert nodes.residue(client_with(), None, "api") == ["node api has no container any more"]


def test_losing_a_node_refuses_unknown_modes_and_stopped_containers() -> None:
    with pytest.raises(PlatformError, match="cannot drain a node"):
        nodes.lose(client_with(), view("a", service="a"), "a", "drain", "run-1", 10)
    with pytest.raises(PlatformError, match="is exited, not running"):
        nodes.lose(client_with(), view("a", service="a", status="exited"), "a", "kill", "r", 10)


# -- replicas and batches ---------------------------------------------------------------------
def test_replica_names_labels_and_states() -> None:
    assert capacity.next_names({"api-replica-1", "api-replica-3"}, "api", 2) == [
        "api-replica-2", "api-replica-4"]
    template = view("shop_api_1", service="api", labels={"io.chaoskit.run": "old", "team": "x"})
    labels = capacity.replica_labels(template, "api-replica-1", "api", "run-2", {1, 2})
    assert labels["com.docker.compose.container-number"] == "3"
    assert (labels["io.chaoskit.run"], labels["io.chaoskit.change"], labels["team"]) == (
        "run-2", "replica", "x")
    assert (labels["io.chaoskit.node"], labels["io.chaoskit.replica-of"]) == (
        "api-replica-1", "api")
    assert capacity.container_name(template, "api-replica-1") == "shop-api-replica-1"
    assert capacity.state(view("a", status="paused"), None) == "PAUSED"
    assert capacity.state(view("a", status="exited"), None) == "DOWN"
    assert capacity.state(view("a"), False) == "STARTING"
    assert capacity.state(view("a"), None) == capacity.state(view("a"), True) == "UP"


def test_a_batch_runs_bounded_on_the_online_cpus_with_a_low_weight_when_isolated() -> None:
    job = OfflineWork("reconciliation", True, 60.0, units=100, rounds=500, window=30.0)
    assert colocation.command(job) == ["timeout", "-k", "3", "65", "python", "-m",
                                       "chaoskit.stack", "offline"]
    env = colocation.environment(job, "b", "api", "postgresql://db/x", {"EXTRA": "1"})
    assert (env["CHAOSKIT_DATABASE_URL"], env["CHAOSKIT_OFFLINE_WINDOW"], env["EXTRA"]) == (
        "postgresql://db/x", "30s", "1")
    burner = OfflineWork("burner", False, 10.0, cpu=2, memory=1024)
    assert colocation.command(burner)[4:] == ["python", "-m", "chaoskit.lab.offline", "--cpu",
                                              "2", "--memory", "1024", "--seconds", "10"]
    online = view("shop_api_1", service="api")
    assert colocation.weights(online, True, "0-1") == {"cpuset_cpus": "0", "cpu_shares": 2}
    assert colocation.weights(online, False, "0-1") == {"cpuset_cpus": "0", "cpu_shares": 1024}
    assert colocation.container_name("t/1", "api") == "chaoskit-offline-t-1-api"


# -- the platform -----------------------------------------------------------------------------
def platform(**fields: Any) -> ContainersPlatform:
    config = ContainersConfig.model_validate({"engine": ENGINE, "project": "shop", **fields})
    return ContainersPlatform(config, entry="http://198.19.1.5:8300", toxiproxy=None,
                              proxies=[{"name": "bank", "listen": "a:1", "upstream": "b:2"}])


def test_the_platform_rebuilds_from_its_description() -> None:
    original = platform(services=["api"], stop_timeout="5s", health={"api": "http://{address}"})
    original.bind_run("run-7")
    again = ContainersPlatform.from_description(original.describe())
    assert again.describe() == original.describe()
    assert (again.run, again.engine, again.config.stop_timeout) == ("run-7", ENGINE, 5.0)
    assert again.identity() == f"containers:{ENGINE}:shop"
    assert again.declared_proxies() == [{"name": "bank", "listen": "a:1", "upstream": "b:2"}]


def test_the_platform_offers_what_containers_can_do_and_says_what_is_missing() -> None:
    built = platform()
    offered = [a for a in abilities.ALL_ABILITIES if isinstance(built, a)]
    assert {a.__name__ for a in offered} == {
        "Entry", "Database", "ToxiproxyAccess", "OwnHosts", "NodeOperations", "NodeHealth",
        "Capacity", "Colocation", "ProcessCpu", "RunBinding"}
    assert set(built.node_loss_modes()) == {"kill", "freeze", "isolate", "stop"}
    assert built.entry_url() == "http://198.19.1.5:8300"
    with pytest.raises(PlatformError, match="no database URL"):
        built.database_url()
    with pytest.raises(PlatformError, match="no Toxiproxy"):
        built.toxiproxy_url()
    with pytest.raises(PlatformError, match="does not know what to scale"):
        built.next_node_names(1)
    with pytest.raises(ValidationError):
        ContainersConfig.model_validate({"projekt": "shop"})


def test_preflight_reports_an_engine_that_does_not_answer() -> None:
    problems = asyncio.run(platform().preflight())
    assert len(problems) == 1 and f"no container engine answers at {ENGINE}" in problems[0]
    assert preflight(ContainersPlatform(ContainersConfig(engine=ENGINE)))[0].startswith(
        "no container engine answers")


def test_selection_problems_name_missing_services_containers_and_capacity() -> None:
    views = [view("shop_api_1", service="api"), view("db", project=None)]
    wanted = Selection(project="shop", services=("api", "ledger"), containers=("db", "dbx"),
                       capacity="web")
    problems = selection_problems(Inventory(wanted, views, node_names(views, wanted)), ENGINE)
    assert problems == [
        "compose project 'shop' has no service 'ledger' (its services: api): fix "
        "target.services",
        f"no container named 'dbx' on {ENGINE}: check `docker ps -a` and fix target.containers",
        "target.capacity 'web' is no service among the target's nodes (api, db): name the one "
        "scale +N copies"]
    gone = Selection(project="nope")
    assert "has no containers" in selection_problems(Inventory(gone, [], {}), ENGINE)[0]


def test_recovery_report_lines() -> None:
    report = ContainersRecovery("unix:///x", undone=["a"], left=["b"])
    assert not report.clean
    assert report.lines() == ["undone: a", "still there: b",
                              "containers (unix:///x): some changes remain"]
    assert ContainersRecovery("e").lines() == ["containers (e): nothing of chaoskit's is left"]


def test_recovering_from_an_engine_that_does_not_answer_reports_it() -> None:
    report = recover_containers(ENGINE, run="run-1")
    assert not report.clean and report.undone == []
    assert "no container engine answers" in report.failed[0]
