"""Unit tests of the local lab's parts: state file, addresses, layout, HAProxy config, CLI."""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
from pathlib import Path

import pytest

from chaoskit.errors import PermissionMissing, PlatformError
from chaoskit.lab import addresses, commands, haproxy, nodes, state, topology
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord
from tests.fixtures.real import require_real


def sample_state(tmp_path: Path, mode: str = "process") -> LabState:
    lab = LabState(name="t", dir=str(tmp_path), lab_id="abcde", mode=mode,
                   host_ip="127.0.0.1", postgres_url="postgresql://postgres@127.0.0.1:5432/db")
    lab.nodes = [NodeRecord("node-1", "127.0.0.1", roles=["gateway"]),
                 NodeRecord("node-2", "127.0.0.1")]
    lab.processes = [ProcessRecord("gateway-node-1", "gateway", "node-1", ["x"], {"A": "1"},
                                   str(tmp_path / "g.log"), "127.0.0.1:1234", pid=None)]
    return lab


def test_state_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    lab = sample_state(tmp_path)
    state.save(lab)
    assert not (tmp_path / "state.tmp").exists()
    again = state.load(tmp_path)
    assert again == lab
    assert again.node("node-1").roles == ["gateway"]
    assert again.processes_on("node-1")[0].env == {"A": "1"}


def test_unknown_node_and_missing_lab_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="no node 'node-9'") as err:
        sample_state(tmp_path).node("node-9")
    assert "node-1, node-2" in err.value.hint
    with pytest.raises(PlatformError, match="no lab at") as err:
        state.load(tmp_path / "nothing")
    assert "lab up" in err.value.hint


def test_lab_names_map_under_the_state_root(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSKIT_STATE_DIR", str(tmp_path))
    assert state.lab_dir(None) == (tmp_path / "labs" / "default").resolve()
    assert state.lab_dir("peak") == (tmp_path / "labs" / "peak").resolve()
    assert state.lab_dir(str(tmp_path / "x")) == (tmp_path / "x").resolve()


def test_kernel_object_names_fit_the_interface_limit(tmp_path: Path) -> None:
    lab_id = state.lab_id(tmp_path / "some" / "very" / "long" / "lab-directory-name")
    assert len(lab_id) == 5
    assert len(f"ck{lab_id}v99") <= 15 and len(f"ck{lab_id}") <= 15
    assert state.lab_id(tmp_path / "a") != state.lab_id(tmp_path / "b")


def test_subnet_choice_avoids_every_network_in_use() -> None:
    used = [ipaddress.ip_network("198.18.1.0/24"), ipaddress.ip_network("198.18.2.0/23"),
            ipaddress.ip_network("10.0.0.0/8")]
    chosen = addresses.pick_subnet(used)
    assert chosen == ipaddress.ip_network("198.18.4.0/24")
    assert addresses.pick_subnet([]) == ipaddress.ip_network("198.18.1.0/24")
    with pytest.raises(PlatformError, match="no free /24"):
        addresses.pick_subnet([ipaddress.ip_network("198.18.0.0/15")])


def test_addresses_inside_a_subnet() -> None:
    net = ipaddress.ip_network("198.18.7.0/24")
    assert addresses.host_address(net) == "198.18.7.1"
    assert [addresses.node_address(net, i) for i in range(2)] == ["198.18.7.2", "198.18.7.3"]
    with pytest.raises(PlatformError):
        addresses.node_address(ipaddress.ip_network("198.18.7.0/30"), 1)


def test_prefixes_are_read_from_ip_json() -> None:
    entries = [{"addr_info": [{"local": "198.18.3.1", "prefixlen": 24}]},
               {"dst": "198.19.0.0/16"}, {"dst": "default"}, {"dst": "fe80::/64"}]
    assert addresses._prefixes(entries) == [ipaddress.ip_network("198.18.3.0/24"),
                                            ipaddress.ip_network("198.19.0.0/16")]


def test_free_ports_are_never_handed_out_twice() -> None:
    ports = [addresses.free_port() for _ in range(30)]
    assert len(set(ports)) == 30


def test_placement_spreads_replicas_over_nodes() -> None:
    pairs = topology.placement(["node-1", "node-2", "node-3"])
    assert sorted(n for s, n in pairs if s == "gateway") == ["node-1", "node-2", "node-3"]
    assert sorted(n for s, n in pairs if s == "worker") == ["node-1", "node-2", "node-3"]
    assert [n for s, n in pairs if s == "scheduler"] == ["node-1", "node-2"]
    assert not any(s == "offline" for s, _ in pairs)


def test_stack_reaches_database_and_banks_through_the_proxies(tmp_path: Path) -> None:
    lab = sample_state(tmp_path)
    lab.host_ip = "198.18.5.1"
    lab.proxies = topology.proxy_plan(lab, "127.0.0.1:5432", "127.0.0.1:9000")
    env = topology.stack_env(lab, topology.LabOptions(time_scale=120, env={"X": "y"}))
    listen = lab.proxies["postgres"]["listen"]
    assert listen.startswith("198.18.5.1:")
    assert env["CHAOSKIT_DATABASE_URL"] == f"postgresql://postgres@{listen}/db"
    banks = dict(item.split("=", 1) for item in env["CHAOSKIT_BANK_URLS"].split(","))
    assert set(banks) == {"alpha", "beta", "gamma"}
    assert banks["beta"] == f"http://{lab.proxies['bank-beta']['listen']}"
    assert env["CHAOSKIT_TIME_SCALE"] == "120" and env["X"] == "y"
    assert all(p["upstream"] == "127.0.0.1:9000" for n, p in lab.proxies.items() if n != "postgres")


def test_database_url_rewrite_keeps_credentials_and_options() -> None:
    url = "postgresql://me:pw@db.example:6543/ledger?sslmode=disable"
    assert topology._through(url, "198.18.1.1:7000") == (
        "postgresql://me:pw@198.18.1.1:7000/ledger?sslmode=disable")


def test_haproxy_config_checks_health_and_is_valid(tmp_path: Path) -> None:
    text = haproxy.render(8080, [("node-1", "198.18.1.2:9000"), ("node-2", "198.18.1.3:9000")],
                          str(tmp_path / "admin.sock"))
    assert "option httpchk GET /healthz" in text
    assert "server node-2 198.18.1.3:9000 check" in text
    assert "bind 127.0.0.1:8080" in text
    require_real("haproxy")
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    done = subprocess.run(haproxy.check(config), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_haproxy_stat_lines_become_server_states() -> None:
    text = ("# pxname,svname,qcur,status\nentry,FRONTEND,0,OPEN\n"
            "gateways,node-1,0,UP\ngateways,node-2,0,DOWN\ngateways,BACKEND,0,UP\n")
    assert haproxy._parse_stat(text) == {"node-1": "UP", "node-2": "DOWN"}
    assert haproxy.server_states("/nonexistent/socket") == {}


def test_isolating_a_loopback_node_says_it_needs_root(tmp_path: Path) -> None:
    with pytest.raises(PermissionMissing, match="network namespace") as err:
        nodes.set_isolated(sample_state(tmp_path), "node-1", True)
    assert "root" in err.value.hint


def test_mode_choice_respects_an_explicit_request() -> None:
    from chaoskit.lab import lifecycle as lab
    assert lab.choose_mode("process") == "process"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="chaoskit")
    commands.add_parser(top.add_subparsers(dest="command"))
    return top


def test_cli_parses_up_and_rejects_bad_env(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["lab", "up", "--nodes", "4", "--time-scale", "120",
                                "--env", "CHAOSKIT_LEASE_TTL=1s", "--name", "peak"])
    assert (args.nodes, args.time_scale, args.env, args.name) == (
        4, 120.0, ["CHAOSKIT_LEASE_TTL=1s"], "peak")
    assert commands._parse_env(["A=b=c"]) == {"A": "b=c"}
    bad = parser().parse_args(["lab", "up", "--env", "oops"])
    assert bad.func(bad) == 4
    assert "KEY=VALUE" in capsys.readouterr().err


def test_cli_reports_a_missing_lab_as_an_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["lab", "status", "--json", "--name", str(tmp_path / "none")])
    assert args.func(args) == 4
    assert "no lab at" in capsys.readouterr().err


def test_cli_help_shows_examples() -> None:
    top = parser()
    action = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    text = action.choices["lab"].format_help()
    assert "chaoskit lab up --nodes 4" in text and "chaoskit lab down" in text


def test_logs_selects_by_service_and_tails(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    lab = sample_state(tmp_path)
    Path(lab.processes[0].log).write_text("".join(f"line {i}\n" for i in range(10)))
    state.save(lab)
    args = parser().parse_args(["lab", "logs", "gateway", "-n", "2", "--name", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "line 9" in out and "line 8" in out and "line 7" not in out
    assert json.loads(json.dumps(lab.to_dict()))["name"] == "t"


def test_the_labs_promises_fall_due_inside_a_run_and_can_be_overridden(tmp_path: Path) -> None:
    from chaoskit.spec.units import parse_duration

    lab = sample_state(tmp_path)
    lab.host_ip = "198.18.5.1"
    lab.proxies = topology.proxy_plan(lab, "127.0.0.1:5432", "127.0.0.1:9000")
    env = topology.stack_env(lab, topology.LabOptions(time_scale=60))
    assert parse_duration(env["CHAOSKIT_REFUND_SLA"]) / 60 <= 15  # real seconds at 60x
    custom = topology.stack_env(lab, topology.LabOptions(env={"CHAOSKIT_REFUND_SLA": "2h"}))
    assert custom["CHAOSKIT_REFUND_SLA"] == "2h"


def test_a_lab_that_is_not_up_is_refused_with_the_way_to_start_it(tmp_path: Path) -> None:
    from chaoskit.errors import PlatformError
    from chaoskit.platforms.local.platform import LocalPlatform

    with pytest.raises(PlatformError) as missing:
        LocalPlatform(str(tmp_path / "nowhere")).toxiproxy_url()
    assert "chaoskit lab up" in missing.value.hint
    lab = sample_state(tmp_path)
    lab.status, lab.toxiproxy_api, lab.entry_url = "down", "http://127.0.0.1:1", "http://x"
    state.save(lab)
    with pytest.raises(PlatformError, match="is down") as down:
        LocalPlatform(str(tmp_path)).entry_url()
    assert "chaoskit lab up" in down.value.hint
    lab.status = "up"
    state.save(lab)
    assert LocalPlatform(str(tmp_path)).toxiproxy_url() == "http://127.0.0.1:1"
