"""The processes platform's pure parts: finding by pid file, pattern and unit; /proc parsing;
firewall rules; start commands; marks; residue sentences; the target syntax."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaoskit import registry
from chaoskit.errors import PlatformError, SpecError
from chaoskit.platforms.abilities import (
    Colocation,
    Database,
    NodeHealth,
    NodeOperations,
    OfflineWork,
    ProcessCpu,
    RunBinding,
    ToxiproxyAccess,
    offers,
)
from chaoskit.platforms.processes import (
    colocation,
    finding,
    firewall,
    groups,
    isolation,
    launch,
    marks,
    nodes,
    procfs,
    sockets,
)
from chaoskit.platforms.processes.config import ProcessesConfig, ServiceConfig, safe
from chaoskit.platforms.processes.platform import ProcessesPlatform
from chaoskit.spec.loader import load_experiment_text


def proc(pid: int, ppid: int, cmd: str) -> procfs.Proc:
    return procfs.Proc(pid, ppid, "S", pid, 100 + pid, 0, tuple(cmd.split()))


def table(*procs: procfs.Proc) -> dict[int, procfs.Proc]:
    return {p.pid: p for p in procs}


# -- finding ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "pid"), [
    ("1234\n", 1234), ("  42  ", 42), ("77\nsomething else\n", 77), ("", None), ("abc", None),
    ("0", None), ("-5", None), ("12 34", None)])
def test_a_pid_file_holds_one_positive_pid_on_its_first_line(text: str, pid: int | None) -> None:
    assert finding.parse_pidfile(text) == pid


def test_a_pattern_finds_tree_roots_not_their_matching_children_nor_excluded_ones() -> None:
    procs = table(proc(1, 0, "init"), proc(10, 1, "/bin/sh -c python -m app worker"),
                  proc(11, 10, "python -m app worker"), proc(12, 11, "python -m app worker"),
                  proc(20, 1, "python -m app worker --other"), proc(30, 1, "vim app worker"),
                  proc(40, 1, "python -m app api"))
    assert finding.pattern_roots(r"-m app worker", procs, set()) == [10, 20]
    assert finding.pattern_roots(r"-m app worker$", procs, {10}) == [11]
    assert finding.pattern_roots(r"^python -m app api$", procs, set()) == [40]


def test_a_pattern_must_match_exactly_the_trees_expected() -> None:
    procs = table(proc(1, 0, "init"), proc(10, 1, "python -m app worker"),
                  proc(11, 10, "python -m app helper"), proc(20, 1, "python -m app worker"))
    two = finding.by_command(r"app worker", 2, procs)
    assert two.running and two.roots == (10, 20) and two.pids == (10, 11, 20)
    one = finding.by_command(r"app worker", 1, procs)
    assert not one.running and "matches 2 separate processes, not 1" in one.problem
    none = finding.by_command(r"app nothing", 1, procs)
    assert none.problem == "no process matches /app nothing/"


def test_a_pid_file_is_found_or_says_why_not(tmp_path: Path) -> None:
    procs = procfs.snapshot()
    path = tmp_path / "app.pid"
    assert finding.by_pidfile(str(path), procs).problem == f"pid file {path} does not exist"
    path.write_text("")
    assert finding.by_pidfile(str(path), procs).problem == f"pid file {path} holds no pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    path.write_text(str(dead.pid))
    assert "which is not running" in finding.by_pidfile(str(path), procs).problem
    path.write_text(f"{os.getpid()}\n")
    mine = finding.by_pidfile(str(path), procs)
    assert mine.running and mine.roots == (os.getpid(),)
    assert mine.stamped()[0] == [os.getpid(), procs[os.getpid()].started]


SYSTEMCTL = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
case "$1" in
  show) cat "$(dirname "$0")/state" ;;
  *) exit 0 ;;
esac
"""


@pytest.fixture
def fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `systemctl` on PATH that prints `state` for show and records every call."""
    script = tmp_path / "bin" / "systemctl"
    script.parent.mkdir()
    script.write_text(SYSTEMCTL)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return script.parent


def test_a_unit_is_found_by_its_main_pid_and_started_with_systemctl(
        fake_systemctl: Path, tmp_path: Path) -> None:
    state = fake_systemctl / "state"
    unit = ServiceConfig(unit="app.service")
    state.write_text(f"ActiveState=active\nMainPID={os.getpid()}\nLoadState=loaded\n")
    assert finding.find(unit).roots == (os.getpid(),)
    state.write_text("ActiveState=failed\nMainPID=0\nLoadState=loaded\n")
    assert finding.find(unit).problem == "unit app.service is failed (main pid none)"
    state.write_text("ActiveState=inactive\nMainPID=0\nLoadState=not-found\n")
    assert finding.find(unit).problem == "unit app.service does not exist"
    assert launch.start(unit, tmp_path / "log")["command"] == (
        "systemctl start --no-block app.service")
    sleeper = subprocess.Popen(["sleep", "30"])
    found = finding.Found((sleeper.pid,), (sleeper.pid,))
    assert launch.kill(unit, found) == [sleeper.pid]
    sleeper.wait()
    calls = (fake_systemctl / "calls").read_text().splitlines()
    assert calls[-2:] == ["start --no-block app.service", "kill --signal=SIGKILL app.service"]
    assert calls[0].startswith("show -p ActiveState -p MainPID")


def test_systemctl_show_output_is_read_as_keys_and_values() -> None:
    assert finding.parse_show("A=1\nB=x=y\n\nbad\n") == {"A": "1", "B": "x=y"}


# -- /proc ------------------------------------------------------------------------------------
def test_stat_parsing_survives_a_command_name_with_parentheses_and_spaces() -> None:
    # fields 4.. of proc(5): ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority nice threads itrealvalue starttime ...
    rest = "77 4242 4242 0 -1 0 0 0 0 0 150 25 0 0 20 0 3 0 98765 1000 50"
    assert procfs.parse_stat(f"4242 (evil) (name) S {rest}") == ("S", 77, 4242, 98765, 175)


def test_a_tree_is_its_roots_and_every_descendant() -> None:
    procs = table(proc(1, 0, "init"), proc(5, 1, "a"), proc(6, 5, "b"), proc(7, 6, "c"),
                  proc(8, 1, "d"))
    assert procfs.tree([5], procs) == [5, 6, 7]
    assert procfs.tree([5, 99], procs) == [5, 6, 7]
    assert procfs.ancestors(7, procs) == {6, 5, 1}


def test_this_process_is_alive_and_a_reaped_one_is_not() -> None:
    me = procfs.read(os.getpid())
    assert me is not None and procfs.alive(me.pid, me.started)
    assert not procfs.alive(me.pid, me.started + 1)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not procfs.alive(gone.pid)


# -- sockets and firewall rules -----------------------------------------------------------------
@pytest.mark.parametrize(("raw", "expected"), [
    ("0100007F:1F90", ("127.0.0.1", 8080, 4)),
    ("00000000:0050", ("0.0.0.0", 80, 4)),
    ("00000000000000000000000001000000:0050", ("::1", 80, 6)),
    ("0000000000000000FFFF00000100007F:1F90", ("127.0.0.1", 8080, 4)),
])
def test_proc_net_addresses_are_decoded(raw: str, expected: tuple[str, int, int]) -> None:
    assert sockets.parse_address(raw) == expected


LISTENER = ("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
            "        0 51234 1 0000000000000000 100 0 0 10 0")
CONNECTED = ("   1: 0100007F:B80A 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0"
             "        0 51235 1 0000000000000000 20 4 30 10 -1")


def test_a_listener_is_cut_by_its_port_and_a_connection_by_its_four_tuple_both_ways() -> None:
    assert sockets.parse_line("tcp", "  sl  local_address rem_address   st tx_queue") is None
    listener = sockets.parse_line("tcp", LISTENER)
    connection = sockets.parse_line("tcp", CONNECTED)
    assert listener is not None and connection is not None
    assert listener.listening and not connection.listening and listener.inode == 51234
    (into,) = firewall.socket_rules(listener)
    assert (into.chain, into.match) == ("INPUT", ("-p", "tcp", "-d", "127.0.0.1", "--dport",
                                                  "8080"))
    out, back = firewall.socket_rules(connection)
    assert out.chain == "OUTPUT" and out.match == ("-s", "127.0.0.1", "-d", "127.0.0.1", "-p",
                                                   "tcp", "--sport", "47114", "--dport", "5432")
    assert back.chain == "INPUT" and back.match[-4:] == ("--sport", "5432", "--dport", "47114")
    wildcard = sockets.Socket("tcp", 4, "0.0.0.0", 80, "0.0.0.0", 0, "0A", 1)
    assert firewall.socket_rules(wildcard)[0].match == ("-p", "tcp", "--dport", "80")


def test_rules_carry_the_run_and_node_and_are_found_again_by_them() -> None:
    note = firewall.comment("run-1", "otherpay-worker")
    rule = firewall.cgroup_rules("chaoskit/processes/run-1/otherpay-worker")
    assert rule and rule[0].line(note).startswith("-I OUTPUT 1 -m cgroup --path chaoskit/")
    assert rule[0].line(note).endswith("--comment chaoskit:processes:run-1:otherpay-worker -j DROP")
    listed = ('-A INPUT -m cgroup --path "chaoskit/processes/run-1/otherpay-worker" -m comment '
              '--comment "chaoskit:processes:run-1:otherpay-worker" -j DROP')
    assert firewall.comment_of(listed) == note
    assert firewall.comment_of('-A FORWARD -m comment --comment "netavark rules" -j X') is None
    assert firewall.wanted(note, None, None) and firewall.wanted(note, "run-1", None)
    assert firewall.wanted(note, None, "otherpay-worker")
    assert not firewall.wanted(note, "run-2", None)
    assert not firewall.wanted(note, None, "otherpay-api")


# -- starting ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("command", "exec_"), [
    ("python -m app worker", True),
    ("env A=1 B='two words' python -m app", True),
    ("/usr/bin/app --url 'postgresql://x/y?sslmode=disable'", True),
    ("A=1 python -m app", False),
    ("cd /srv && python -m app", False),
    ("app | logger", False),
    ("app; other", False),
    ("app 'unbalanced", False),
])
def test_one_simple_command_is_execd_by_the_shell(command: str, exec_: bool) -> None:
    assert launch.simple(command) is exec_
    argv = launch.shell_argv(command)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[2] == (f"exec {command}" if exec_ else command)


def test_a_started_service_gets_our_environment_without_chaoskits_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSKIT_RUN_SECRET", "x")
    monkeypatch.setenv("HOME_FOR_TEST", "kept")
    env = launch.environment(ServiceConfig(command="x", start="x", env={"APP_MODE": "live"}))
    assert "CHAOSKIT_RUN_SECRET" not in env
    assert env["HOME_FOR_TEST"] == "kept" and env["APP_MODE"] == "live"


def test_a_service_without_a_start_command_cannot_be_started(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="no `start:` command"):
        launch.start(ServiceConfig(command="x"), tmp_path / "log")


def test_a_start_that_fails_says_what_its_log_ends_with(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    service = ServiceConfig(pidfile=str(tmp_path / "app.pid"), start_timeout="300ms",
                            start="sh -c 'echo no config found; exit 4'")
    assert launch.start(service, log)["log"] == str(log)
    with pytest.raises(PlatformError, match="its log ends: .* no config found"):
        launch.wait_up(service, set(), log)


# -- marks and residue ------------------------------------------------------------------------
def test_marks_are_found_by_node_mode_and_run_and_leave_no_empty_directories(
        tmp_path: Path) -> None:
    path = marks.node_mark(tmp_path, "run-1", "api", "freeze")
    marks.write(path, {"pids": [[1, 2]]})
    other = marks.offline_mark(tmp_path, "run-2", "burn-ab12", "api")
    marks.write(other, {"tag": "burn-ab12", "id": "burner-api-burn-ab12"})
    assert marks.node_marks(tmp_path, "api") == [path]
    assert marks.node_marks(tmp_path, "api", "kill") == []
    assert marks.node_marks(tmp_path, run="run-2") == []
    assert marks.offline_marks(tmp_path, "burn-ab12") == [other]
    assert marks.offline_marks(tmp_path, "burn") == []
    assert (marks.read(path) or {})["pids"] == [[1, 2]]
    marks.remove(path)
    marks.remove(other)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_residue_names_a_missing_service_and_a_leftover_record(tmp_path: Path) -> None:
    service = ServiceConfig(pidfile=str(tmp_path / "gone.pid"), start="true")
    node = nodes.Node("api", service, tmp_path / "state", "run-1")
    path = marks.node_mark(node.state_dir, "run-1", "api", "kill")
    marks.write(path, {"mode": "kill"})
    assert nodes.residue(node) == [
        f"node api: pid file {tmp_path / 'gone.pid'} does not exist",
        f"node api: chaoskit's record of a change is still there ({path})"]


def test_losing_a_node_that_is_not_running_changes_nothing(tmp_path: Path) -> None:
    service = ServiceConfig(pidfile=str(tmp_path / "gone.pid"), start="true")
    node = nodes.Node("api", service, tmp_path / "state", "run-1")
    with pytest.raises(PlatformError, match="node api is not running"):
        nodes.lose(node, "kill")
    with pytest.raises(PlatformError, match="cannot drain a node"):
        nodes.lose(node, "drain")
    assert marks.node_marks(node.state_dir) == []


def test_a_process_born_inside_our_group_goes_back_where_its_service_came_from(
        monkeypatch: pytest.MonkeyPatch) -> None:
    where = {1: "/system.slice/app.service", 2: "/chaoskit/processes/run-1/app", 3: "/other"}
    monkeypatch.setattr(procfs, "cgroup_of", lambda pid, hierarchy: where[pid])
    known = {"1": "/system.slice/app.service"}
    groups.remember(known, 2, "freezer", (1,))
    groups.remember(known, 3, "freezer", (1,))
    assert known == {"1": "/system.slice/app.service", "2": "/system.slice/app.service",
                     "3": "/other"}
    assert groups.ours_path("/chaoskit/processes/run-1/app")
    assert not groups.ours_path("/chaoskit/lab-1/node-1") and not groups.ours_path(None)


# -- co-location ------------------------------------------------------------------------------
def test_offline_work_is_bounded_in_time_and_tagged(tmp_path: Path) -> None:
    burner = OfflineWork("burner", True, 30.0, cpu=2, memory=1024)
    assert colocation.body(burner)[:4] == ["timeout", "-k", "3", "35"]
    assert colocation.body(burner)[4:7] == [sys.executable, "-m", "chaoskit.lab.offline"]
    env = colocation.environment(burner, "run-1", "tag-1", "burner-api-tag-1", "api", None,
                                 "127.0.0.1:1")
    assert (env["CHAOSKIT_COLOCATE"], env["CHAOSKIT_PROCESSES_RUN"]) == ("tag-1", "run-1")
    job = OfflineWork("reconciliation", False, 60.0, units=10, window=30.0)
    with pytest.raises(PlatformError, match="needs the system's database"):
        colocation.environment(job, "r", "t", "n", "api", None, "127.0.0.1:1")
    env = colocation.environment(job, "r", "t", "n", "api", "postgresql://db", "127.0.0.1:1")
    assert env["CHAOSKIT_DATABASE_URL"] == "postgresql://db"
    assert env["CHAOSKIT_OFFLINE_WINDOW"] == "30s" and env["CHAOSKIT_OFFLINE_UNITS"] == "10"
    assert colocation.cpu_list(os.getpid()) == ",".join(
        str(c) for c in sorted(os.sched_getaffinity(0)))


# -- the target syntax and the platform --------------------------------------------------------
def config(**services: dict[str, Any]) -> ProcessesConfig:
    return ProcessesConfig.model_validate({"services": services, "state_dir": "/tmp/x"})


def test_a_service_is_found_exactly_one_way() -> None:
    with pytest.raises(ValueError, match="exactly one of `pidfile`, `command` or `unit`"):
        ServiceConfig(pidfile="/a.pid", command="x")
    with pytest.raises(ValueError, match="got none"):
        ServiceConfig(start="x")
    with pytest.raises(ValueError, match="not a regular expression"):
        ServiceConfig(command="(unclosed")
    with pytest.raises(ValueError, match="service names"):
        config(**{"bad name": {"command": "x"}})
    assert ServiceConfig(command="x", stop_timeout="2s").stop_timeout == 2.0


def test_the_platform_offers_database_and_toxiproxy_only_when_given() -> None:
    bare = ProcessesPlatform.build(config(api={"command": "x", "start": "x"}))
    full = ProcessesPlatform.build(config(api={"command": "x", "start": "x"}),
                                   database="postgresql://db", toxiproxy_url="http://t:8474")
    assert not offers(bare, Database) and not offers(bare, ToxiproxyAccess)
    assert offers(full, Database) and offers(full, ToxiproxyAccess)
    for ability in (NodeOperations, NodeHealth, Colocation, ProcessCpu, RunBinding):
        assert offers(bare, ability)
    rebuilt = ProcessesPlatform.from_description(full.describe())
    assert rebuilt.describe() == full.describe() and offers(rebuilt, Database)
    assert registry.get(registry.PLATFORMS, "processes") is ProcessesPlatform


def test_nodes_health_and_metrics_come_from_the_services() -> None:
    target = ProcessesPlatform.build(config(
        api={"pidfile": "/run/api.pid", "start": "x", "health": "http://127.0.0.1:1/h",
             "metrics": "http://127.0.0.1:1/m"},
        worker={"command": "w", "start": "w"}), run="run 1/x")
    assert [(n.name, n.address) for n in target.nodes()] == [("api", "127.0.0.1"),
                                                            ("worker", "127.0.0.1")]
    assert target.nodes()[0].labels == {"found_by": "pidfile /run/api.pid"}
    assert target.node_health_urls("api") == {"api": "http://127.0.0.1:1/h"}
    assert target.node_health_urls("worker") == {}
    assert target.metrics_targets() == {"api": "http://127.0.0.1:1/m"}
    assert target.metrics_targets(exclude_node="api") == {}
    assert target.run == safe("run 1/x") == "run-1-x"
    target.bind_run("20250101-abc")
    assert target.describe()["run"] == "20250101-abc"
    with pytest.raises(PlatformError, match="no node 'bank'"):
        target.node_residue("bank")


def test_without_root_isolate_says_why_and_what_to_use_instead(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    why = nodes.modes()["isolate"]
    assert why is not None and "needs root" in why and "kill/stop/freeze" in why
    assert isolation.unavailable() == why
    assert nodes.modes()["freeze"] is None
    assert colocation.mechanism().startswith("nice 19")


EXPERIMENT = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {name: processes-syntax}
target:
  platform: processes
  entry: http://127.0.0.1:8300
  scope: {nodes: [worker]}
  services:
    worker:
      pidfile: /run/otherpay/worker.pid
      start: python -m tests.otherpay worker
      health: http://127.0.0.1:8301/health
      stop_timeout: 10s
phases: {baseline: 1s, recover: 1s}
faults:
  - {name: w, type: node-loss, mode: kill, target: {node: worker}, start: 1s, duration: 2s}
hypothesis:
  - {name: ok, probe: {type: fake, signal: s}, expect: "<= 1"}
"""


def test_the_target_syntax_validates_and_a_typo_is_named_where_it_is() -> None:
    experiment = load_experiment_text(EXPERIMENT, "x.yaml")
    target = ProcessesPlatform.from_target(experiment.target)
    assert target.config.services["worker"].stop_timeout == 10.0
    with pytest.raises(SpecError) as caught:
        load_experiment_text(EXPERIMENT.replace("stop_timeout", "stop_timout"), "x.yaml")
    assert "x.yaml:13" in caught.value.render()
