"""Idempotent retries against a real gateway and PostgreSQL: money moves exactly once."""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from chaoskit.stack.idempotency import request_hash
from chaoskit.stack.process import ServiceFleet, ServiceProcess

pytestmark = pytest.mark.integration
PAYMENT = {"amount": "12.34", "currency": "CNY", "merchant": "m-1"}


@pytest.fixture
def gateway(stack_services: ServiceFleet, database_url: str) -> ServiceProcess:
    stack_services.env["CHAOSKIT_DATABASE_URL"] = database_url
    return stack_services.start("gateway")


def count(url: str, sql: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


def pay(gateway: ServiceProcess, key: str, body: dict[str, str] = PAYMENT) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/payments", json=body,
                      headers={"Idempotency-Key": key}, timeout=10)


def test_sequential_retries_replay_the_first_answer(gateway: ServiceProcess,
                                                    database_url: str) -> None:
    answers = [pay(gateway, "k-seq") for _ in range(3)]
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(database_url, "SELECT count(*) FROM flows WHERE kind = 'payment'") == 1
    assert count(database_url, "SELECT count(*) FROM ledger_entries") == 2
    metrics = httpx.get(gateway.url + "/metrics").text
    assert ('payments_request_duration_seconds_count{node="gateway-0",route="/v1/payments",'
            'service="gateway",status="201"} 3.0') in metrics


async def _burst(url: str, path: str, key: str, body: dict[str, str], n: int) -> list[
        httpx.Response]:
    async with httpx.AsyncClient(timeout=10) as client:
        return await asyncio.gather(*(client.post(
            url + path, json=body, headers={"Idempotency-Key": key}) for _ in range(n)))


def test_concurrent_same_key_payments_move_money_once(gateway: ServiceProcess,
                                                      database_url: str) -> None:
    answers = asyncio.run(_burst(gateway.url, "/v1/payments", "k-burst", PAYMENT, 24))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(database_url, "SELECT count(*) FROM flows") == 1
    assert count(database_url, "SELECT count(*) FROM ledger_entries") == 2


def test_concurrent_same_key_refunds_create_one_refund(gateway: ServiceProcess,
                                                       database_url: str) -> None:
    payment_id = pay(gateway, "k-pay").json()["id"]
    body = {"payment_id": payment_id, "amount": "5.00"}
    answers = asyncio.run(_burst(gateway.url, "/v1/refunds", "k-ref", body, 12))
    assert {a.status_code for a in answers} == {202}
    assert len({(a.json()["id"], a.json()["due_at"]) for a in answers}) == 1
    assert count(database_url, "SELECT count(*) FROM flows WHERE kind = 'refund'") == 1


def test_lost_response_is_replayed_on_retry(gateway: ServiceProcess, database_url: str) -> None:
    body = b'{"amount": "7.00", "currency": "CNY", "merchant": "m-1"}'
    request = (f"POST /v1/payments HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k-lost\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(request + body)
        sock.recv(1)  # the server answered; we hang up without reading the answer
    retry = pay(gateway, "k-lost", {"amount": "7.00", "currency": "CNY", "merchant": "m-1"})
    assert retry.status_code == 201
    assert count(database_url, "SELECT count(*) FROM flows WHERE idempotency_key = 'k-lost'") == 1
    assert count(database_url, "SELECT count(*) FROM ledger_entries") == 2


def test_refusals_are_explicit(gateway: ServiceProcess) -> None:
    assert httpx.post(f"{gateway.url}/v1/payments", json=PAYMENT).status_code == 400
    assert pay(gateway, "k-a").status_code == 201
    reused = pay(gateway, "k-a", {**PAYMENT, "amount": "99.00"})
    assert reused.status_code == 422 and "different request" in reused.json()["error"]
    unknown = httpx.post(f"{gateway.url}/v1/refunds", json={"payment_id": "nope", "amount": "1"},
                         headers={"Idempotency-Key": "k-b"})
    assert unknown.status_code == 404
    paid = pay(gateway, "k-c").json()["id"]
    too_much = httpx.post(f"{gateway.url}/v1/refunds",
                          json={"payment_id": paid, "amount": "12.35"},
                          headers={"Idempotency-Key": "k-d"})
    assert too_much.status_code == 409


def test_no_idempotency_defect_moves_money_on_every_retry(stack_services: ServiceFleet,
                                                          database_url: str) -> None:
    stack_services.env["CHAOSKIT_DATABASE_URL"] = database_url
    broken = stack_services.start("gateway", CHAOSKIT_BROKEN="no-idempotency")
    answers = [pay(broken, "k-same") for _ in range(3)]
    assert len({a.json()["id"] for a in answers}) == 3
    assert count(database_url, "SELECT count(*) FROM flows WHERE kind = 'payment'") == 3


FIRST = {"id": "pay_first", "status": "completed"}


@pytest.fixture
def patient_gateway(stack_services: ServiceFleet, database_url: str) -> ServiceProcess:
    stack_services.env["CHAOSKIT_DATABASE_URL"] = database_url
    return stack_services.start("gateway", CHAOSKIT_IDEMPOTENCY_WAIT="1500ms")


def hold_key(conn: psycopg.Connection, key: str) -> None:
    """Play the first request, in flight: its key row inserted, its transaction still open."""
    conn.execute("INSERT INTO idempotency_keys (key, route, request_hash, response_status,"
                 " response_body) VALUES (%s, 'payments', %s, 201, %s)",
                 (key, request_hash("payments", PAYMENT), Jsonb(FIRST)))


def test_repeat_waits_for_the_first_request_in_flight(patient_gateway: ServiceProcess,
                                                      database_url: str) -> None:
    with psycopg.connect(database_url) as conn, ThreadPoolExecutor(1) as pool:
        hold_key(conn, "k-held")
        repeat = pool.submit(pay, patient_gateway, "k-held")
        time.sleep(0.5)
        assert not repeat.done()  # it waits on the first one rather than paying again
        conn.commit()
        answer = repeat.result(5)
    assert answer.status_code == 201 and answer.json() == FIRST
    assert count(database_url, "SELECT count(*) FROM flows") == 0  # ours moved no money


def test_repeat_does_the_work_when_the_first_request_died(patient_gateway: ServiceProcess,
                                                          database_url: str) -> None:
    with psycopg.connect(database_url) as conn, ThreadPoolExecutor(1) as pool:
        hold_key(conn, "k-died")
        repeat = pool.submit(pay, patient_gateway, "k-died")
        time.sleep(0.5)
        conn.rollback()  # the first request's transaction never committed
        answer = repeat.result(5)
    assert answer.status_code == 201 and answer.json()["id"] != FIRST["id"]
    assert count(database_url, "SELECT count(*) FROM flows") == 1


def test_a_long_first_request_gets_409_then_the_replay(patient_gateway: ServiceProcess,
                                                       database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        hold_key(conn, "k-slow")
        waited = pay(patient_gateway, "k-slow")
        conn.commit()
    assert waited.status_code == 409 and waited.headers["retry-after"] == "1"
    assert pay(patient_gateway, "k-slow").json() == FIRST
