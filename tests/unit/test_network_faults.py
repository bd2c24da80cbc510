"""Planning of network faults: target resolution, toxic naming, configs in human units."""

from __future__ import annotations

import random
import tomllib
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from chaoskit.errors import FaultError, PlatformError
from chaoskit.faults import network
from chaoskit.faults.base import MeasuresEffect, owner_tag
from chaoskit.faults.network_config import BandwidthConfig, LatencyConfig, LimitDataConfig
from chaoskit.faults.network_targets import family, resolve_proxies
from chaoskit.faults.proxy_fault import label_of
from chaoskit.platforms.abilities import ToxiproxyAccess
from chaoskit.testing import FakePlatform, platform_without
from chaoskit.toxiproxy import ToxiproxyServer

UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1: listing fails at once


class PaperPlatform(FakePlatform):
    """The fake platform with a Toxiproxy that is not there; proxies declared, not run."""

    name = "paper"

    def __init__(self, declared: list[dict[str, str]] | None = None) -> None:
        super().__init__()
        self.declared = declared
        self.set_address("toxiproxy", UNREACHABLE)

    def declared_proxies(self) -> list[dict[str, str]]:
        return self.declared or []


def declared(*names: str) -> list[dict[str, str]]:
    return [{"name": n, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"} for n in names]


def plan(cls: type[network.ProxyFault], target: dict[str, Any], platform: Any = None,
         name: str = "slow-bank", run: str = "run-a", **fields: Any) -> dict[str, Any]:
    fault = cls(platform or PaperPlatform(), run)
    return fault.plan(name, target, cls.Config(**fields), random.Random(1))


BANKS = ["bank", "bank-alpha", "bank-beta", "banking", "postgres", "postgres-replica", "ledger"]


@pytest.mark.parametrize(("target", "expected"), [
    ({"dependency": "bank"}, ["bank", "bank-alpha", "bank-beta"]),
    ({"dependency": "bank:alpha"}, ["bank-alpha"]),
    ({"dependency": "postgres"}, ["postgres", "postgres-replica"]),
    ({"proxy": "ledger"}, ["ledger"]),
])
def test_selectors_resolve_to_proxy_names(target: dict[str, str], expected: list[str]) -> None:
    assert resolve_proxies(target, [], lambda: BANKS) == expected


def test_declared_and_listed_proxies_are_merged() -> None:
    assert resolve_proxies({"dependency": "bank"}, ["bank-gamma"], lambda: ["bank-alpha"]) == [
        "bank-alpha", "bank-gamma"]


def test_an_exact_selector_needs_no_listing() -> None:
    def listed() -> list[str]:
        raise AssertionError("must not list the server")
    assert resolve_proxies({"dependency": "bank:zeta"}, [], listed) == ["bank-zeta"]


def test_unreachable_server_is_fine_when_declarations_answer() -> None:
    intent = plan(network.LatencyFault, {"dependency": "bank"},
                  PaperPlatform(declared("bank-alpha", "ledger")), latency="100ms")
    assert intent["proxies"] == ["bank-alpha"]
    assert [d["name"] for d in intent["declared"]] == ["bank-alpha"]


def test_unreachable_server_without_declarations_says_so() -> None:
    with pytest.raises(PlatformError, match="unreachable") as caught:
        plan(network.LatencyFault, {"dependency": "bank"}, latency="100ms")
    assert caught.value.hint


def test_a_platform_without_toxiproxy_says_so() -> None:
    with pytest.raises(PlatformError, match="the bare platform cannot reach a Toxiproxy"):
        plan(network.LatencyFault, {"dependency": "bank"}, platform_without(ToxiproxyAccess),
             latency="100ms")


def test_no_matching_proxy_is_an_error_with_a_hint() -> None:
    with pytest.raises(FaultError, match="dependency 'bank'") as caught:
        resolve_proxies({"dependency": "bank"}, ["ledger"], lambda: ["postgres"])
    assert "bank-<name>" in caught.value.hint


@pytest.mark.parametrize("target", [
    {}, {"proxy": "a", "dependency": "bank"}, {"node": "n1"}, {"proxy": ""}, {"proxy": 3},
    {"proxy": "a", "extra": 1}, {"proxy": "a/b"},
])
def test_malformed_targets_are_refused(target: dict[str, Any]) -> None:
    with pytest.raises(FaultError) as caught:
        resolve_proxies(target, [], lambda: BANKS)
    assert caught.value.hint


def test_toxics_are_named_per_run_fault_and_stream() -> None:
    intent = plan(network.BandwidthFault, {"proxy": "bank-alpha"}, name="thin", rate="2MB/s",
                  stream="both", toxicity="25%")
    owner = owner_tag("run-a")
    assert intent["owner"] == "run-a" and label_of(intent) == f"{owner}-thin"
    assert intent["toxics"] == [
        {"proxy": "bank-alpha", "name": f"chaoskit-{owner}-thin-downstream",
         "stream": "downstream"},
        {"proxy": "bank-alpha", "name": f"chaoskit-{owner}-thin-upstream", "stream": "upstream"}]
    other = plan(network.BandwidthFault, {"proxy": "bank-alpha"}, name="thin", rate="2MB/s",
                 run="run-b")  # the same experiment run again: its toxics are its own
    assert not family(label_of(intent)) & family(label_of(other))
    assert intent["toxic"] == {"type": "bandwidth", "toxicity": 0.25,
                               "attributes": {"rate": 2000}}
    assert intent["toxiproxy"] == UNREACHABLE and intent["created"] == []


def test_latency_intent_asks_one_delay_per_delayed_direction() -> None:
    one = plan(network.LatencyFault, {"proxy": "p"}, latency="150ms", jitter="10ms")
    two = plan(network.LatencyFault, {"proxy": "p"}, latency="150ms", stream="both")
    assert one["toxic"]["attributes"] == {"latency": 150, "jitter": 10}
    assert (one["asked_added_ms"], two["asked_added_ms"]) == (150.0, 300.0)
    assert one["probe"] == {"kind": "http"}
    assert plan(network.LatencyFault, {"proxy": "p"}, latency="1s", probe="none")["probe"] is None


@pytest.mark.parametrize(("cls", "fields", "kind", "attributes"), [
    (network.TimeoutFault, {}, "timeout", {"timeout": 0}),
    (network.ResetPeerFault, {"timeout": "2s"}, "reset_peer", {"timeout": 2000}),
    (network.SlowCloseFault, {"delay": "300ms"}, "slow_close", {"delay": 300}),
    (network.LimitDataFault, {"max_bytes": 4096}, "limit_data", {"bytes": 4096}),
])
def test_each_kind_plans_its_toxiproxy_toxic(cls: type[network.ProxyFault], fields: dict[str, Any],
                                             kind: str, attributes: dict[str, int]) -> None:
    intent = plan(cls, {"proxy": "p"}, **fields)
    assert intent["toxic"]["type"] == kind and intent["toxic"]["attributes"] == attributes
    assert intent["toxics"][0]["stream"] == "downstream"  # Toxiproxy's default direction


def test_down_plans_a_mark_not_a_toxic() -> None:
    intent = plan(network.DownFault, {"dependency": "bank:alpha"}, name="cut")
    assert intent["mark"] == f"chaoskit-{owner_tag('run-a')}-cut-disabled"
    assert "toxics" not in intent and intent["mark"] in family(label_of(intent))


def test_fault_families_do_not_overlap() -> None:
    assert family("a").isdisjoint(family("a-b"))
    assert family("a").isdisjoint(family("a-downstream"))


@pytest.mark.parametrize(("fields", "problem"), [
    ({"latency": "1.5ms"}, "whole milliseconds"),
    ({"latency": 100}, "unit"),
    ({"latency": "100ms", "stream": "sideways"}, "stream"),
    ({"latency": "100ms", "toxicity": "150%"}, "between"),
    ({"latency": "100ms", "colour": "red"}, "colour"),
])
def test_latency_config_refuses_what_toxiproxy_cannot_do(fields: dict[str, Any],
                                                          problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        LatencyConfig(**fields)


def test_bandwidth_and_limit_configs_check_their_units() -> None:
    assert BandwidthConfig(rate=64).rate == 64
    assert BandwidthConfig(rate="1.5MB/s").rate == 1500
    for bad in ("fast", 0, "0.5KB/s"):
        with pytest.raises(ValidationError):
            BandwidthConfig(rate=bad)
    with pytest.raises(ValidationError):
        LimitDataConfig(max_bytes=0)


def test_unsafe_fault_name_is_refused() -> None:
    with pytest.raises(FaultError, match="fault name"):
        plan(network.TimeoutFault, {"proxy": "p"}, name="a b")


def test_only_latency_measures_its_effect() -> None:
    assert isinstance(network.LatencyFault(PaperPlatform()), MeasuresEffect)
    assert not isinstance(network.TimeoutFault(PaperPlatform()), MeasuresEffect)


def test_every_network_kind_is_registered_under_its_type_name() -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    faults = project["project"]["entry-points"]["chaoskit.faults"]
    mine = {k: v for k, v in faults.items() if v.startswith("chaoskit.faults.network:")}
    assert set(mine) == {"latency", "bandwidth", "timeout", "reset-peer", "slow-close",
                         "limit-data", "down"}
    for type_name, target in mine.items():
        module, _, attr = target.partition(":")
        assert getattr(import_module(module), attr).type_name == type_name


@pytest.mark.parametrize("url", ["https://127.0.0.1:8474", "http://127.0.0.1:notaport",
                                 "http://:8474", "ftp://host"])
def test_a_bad_toxiproxy_url_is_refused_with_a_hint(url: str) -> None:
    with pytest.raises(PlatformError, match="not a Toxiproxy API URL") as caught:
        ToxiproxyServer(url)
    assert "http://HOST:PORT" in caught.value.hint


def test_a_bare_address_gets_the_default_scheme_and_port() -> None:
    assert ToxiproxyServer("127.0.0.1:9000").url == "http://127.0.0.1:9000"
    assert ToxiproxyServer("http://localhost").url == "http://localhost:8474"
