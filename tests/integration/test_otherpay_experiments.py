"""Experiments written only with chaoskit's general mechanisms against otherpay, a payment
service chaoskit knows nothing about (tests/otherpay): a spike with its bank slowed, its worker
process killed, its promises and money judged from its own tables; the same experiment fails on
a broken otherpay, naming the item that caught it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.otherpay.launcher import HEALTH, ROOT, OtherPay

pytestmark = [pytest.mark.integration, pytest.mark.root]
EXPERIMENTS = ROOT / "tests" / "otherpay" / "experiments"


def run(name: str, op: OtherPay, tmp: Path, **sets: str) -> tuple[int, dict, str]:
    values = {"database": op.database_url, "entry": op.api_url, **sets}
    command = [sys.executable, "-m", "chaoskit.cli", "run", str(EXPERIMENTS / f"{name}.yaml"),
               "--seed", "3", "--display", "plain", "--no-report", "--out", str(tmp / "runs")]
    for key, value in values.items():
        command += ["--set", f"{key}={value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env={**os.environ, "CHAOSKIT_CLAIMS": str(tmp / "claims")})
    journals = sorted((tmp / "runs").glob(f"{name}-*/journal.jsonl"))
    closing = json.loads(journals[-1].read_text().splitlines()[-1]) if journals else {}
    return done.returncode, closing, done.stdout + done.stderr


def worker(op: OtherPay, tmp: Path) -> dict[str, str]:
    return {"worker_pidfile": str(op.pidfiles["worker"]), "worker_start": op.commands["worker"],
            "worker_cwd": str(ROOT), "worker_log": str(tmp / "worker-restarted.log"),
            "worker_health": op.urls["worker"] + HEALTH["worker"]}


def failed(closing: dict) -> set[str]:
    return {v["item"] for v in closing.get("verdicts", []) if v["status"] == "failed"}


def test_a_spike_with_the_bank_slow_holds_on_a_healthy_otherpay(otherpay: OtherPay,
                                                                 tmp_path: Path) -> None:
    code, closing, out = run("otherpay-peak", otherpay, tmp_path,
                             toxiproxy=otherpay.toxiproxy_url, bank_proxy=otherpay.bank_proxy,
                             **worker(otherpay, tmp_path))
    assert code == 0, out[-4000:]
    assert closing["audit"]["clean"] and failed(closing) == set()
    judged = {v["item"]: v for v in closing["verdicts"] if v["phase"] == "after"}
    assert judged["refunds-on-schedule"]["samples"] > 0  # evidence, not an empty pass
    assert otherpay.query("SELECT count(*) AS n FROM op_refund_requests")[0]["n"] > 20
    proxy = httpx.get(f"{otherpay.toxiproxy_url}/proxies/{otherpay.bank_proxy}", timeout=5)
    assert proxy.json()["toxics"] == []  # the latency is gone


def test_the_worker_killed_and_restarted_keeps_every_promise(otherpay: OtherPay,
                                                             tmp_path: Path) -> None:
    before = otherpay.pid("worker")
    code, closing, out = run("otherpay-worker-lost", otherpay, tmp_path,
                             **worker(otherpay, tmp_path))
    assert code == 0, out[-4000:]
    assert closing["audit"]["clean"] and failed(closing) == set()
    assert otherpay.pid("worker") not in (None, before)  # a new process, started by chaoskit


@pytest.mark.parametrize("otherpay_broken", ["unbooked-refunds"], indirect=True)
def test_a_worker_that_settles_refunds_without_booking_them_fails_refunds_booked(
        otherpay_broken: OtherPay, tmp_path: Path) -> None:
    code, closing, out = run("otherpay-worker-lost", otherpay_broken, tmp_path,
                             **worker(otherpay_broken, tmp_path))
    assert code == 1, out[-4000:]
    assert "refunds-booked" in failed(closing)
    (verdict,) = [v for v in closing["verdicts"] if v["item"] == "refunds-booked"]
    assert verdict["examples"] and "refund_ref" in verdict["examples"][0]  # which refunds
    assert "refunds-booked" in out and "e.g." in out
