"""StackConfig.from_env: the contract's variables, their defaults, and helpful refusals."""

from __future__ import annotations

import pytest

from chaoskit.errors import PlatformError
from chaoskit.stack.config import StackConfig, parse_bank_urls, parse_listen


def test_defaults_follow_the_contract() -> None:
    config = StackConfig.from_env({"CHAOSKIT_NODE": "n1"})
    assert config.time_scale == 1.0
    assert config.refund_sla == 7200.0 and config.final_window == 7200.0
    assert config.lease_ttl == 2.0 and config.bank_latency == pytest.approx(0.02)
    assert config.bank_error_rate == 0.0 and config.broken == frozenset()
    assert config.node == "n1" and config.instance.startswith("n1-")


def test_scenario_durations_are_compressed_by_the_time_scale() -> None:
    config = StackConfig.from_env({"CHAOSKIT_TIME_SCALE": "60", "CHAOSKIT_REFUND_SLA": "2h",
                                   "CHAOSKIT_FINAL_WINDOW": "30m"})
    assert config.real(config.refund_sla) == pytest.approx(120.0)
    assert config.real(config.final_window) == pytest.approx(30.0)


def test_every_contract_variable_is_read() -> None:
    env = {"CHAOSKIT_DATABASE_URL": "postgresql://u@h:1/d",
           "CHAOSKIT_BANK_URLS": "alpha=http://127.0.0.1:1, beta=http://127.0.0.1:2/",
           "CHAOSKIT_LISTEN": "127.0.0.1:9000", "CHAOSKIT_INSTANCE": "gw-1",
           "CHAOSKIT_LEASE_TTL": "500ms", "CHAOSKIT_BANK_LATENCY": "0s",
           "CHAOSKIT_BANK_ERROR_RATE": "5%", "CHAOSKIT_OFFLINE_UNITS": "10",
           "CHAOSKIT_OFFLINE_WINDOW": "1h", "CHAOSKIT_BROKEN": "no-takeover, no-standby"}
    config = StackConfig.from_env(env)
    assert config.require_database() == "postgresql://u@h:1/d"
    assert config.bank_urls == {"alpha": "http://127.0.0.1:1", "beta": "http://127.0.0.1:2"}
    assert config.listen_address == ("127.0.0.1", 9000) and config.instance == "gw-1"
    assert config.lease_ttl == 0.5 and config.bank_latency == 0.0
    assert config.bank_error_rate == pytest.approx(0.05)
    assert config.offline_units == 10 and config.offline_window == 3600.0
    assert config.is_broken("no-standby") and not config.is_broken("no-idempotency")


@pytest.mark.parametrize(("name", "value"), [
    ("CHAOSKIT_REFUND_SLA", "2"), ("CHAOSKIT_LEASE_TTL", "0s"), ("CHAOSKIT_TIME_SCALE", "0"),
    ("CHAOSKIT_BANK_ERROR_RATE", "150%"), ("CHAOSKIT_BROKEN", "no-brakes"),
    ("CHAOSKIT_BANK_URLS", "alpha"), ("CHAOSKIT_OFFLINE_UNITS", "many"),
])
def test_bad_values_are_refused_with_a_hint(name: str, value: str) -> None:
    with pytest.raises(PlatformError) as caught:
        StackConfig.from_env({name: value})
    assert name in caught.value.message and caught.value.hint.startswith("set ")


def test_missing_database_says_what_to_set() -> None:
    with pytest.raises(PlatformError, match="CHAOSKIT_DATABASE_URL"):
        StackConfig.from_env({}).require_database()


def test_listen_and_bank_parsing() -> None:
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen(":8080") == ("0.0.0.0", 8080)
    with pytest.raises(PlatformError):
        parse_listen("localhost")
    assert list(parse_bank_urls("b=http://x:1,a=http://y:2")) == ["b", "a"]


def test_entry_point_refuses_unknown_services(capsys: pytest.CaptureFixture[str]) -> None:
    from chaoskit.stack.__main__ import main

    assert main(["cashier"]) == 2 and main([]) == 2
    assert "gateway,worker,scheduler,bank,offline" in capsys.readouterr().err


def test_bad_configuration_exits_with_the_error_status(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from chaoskit.stack.__main__ import main

    monkeypatch.setenv("CHAOSKIT_LEASE_TTL", "soon")
    assert main(["worker"]) == 4
    assert "CHAOSKIT_LEASE_TTL" in capsys.readouterr().err
