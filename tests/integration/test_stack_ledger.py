"""The balance check the autouse fixture runs after every test really catches broken books."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from chaoskit.stack.process import ServiceFleet
from tests.fixtures.postgres import ledger_problems

pytestmark = pytest.mark.integration


def test_imbalances_and_double_bookings_are_reported(stack_services: ServiceFleet,
                                                     database_url: str) -> None:
    stack_services.env["CHAOSKIT_DATABASE_URL"] = database_url
    gateway = stack_services.start("gateway")
    paid = httpx.post(f"{gateway.url}/v1/payments", headers={"Idempotency-Key": "k"},
                      json={"amount": "4.00", "currency": "EUR", "merchant": "m"}).json()["id"]
    assert ledger_problems(database_url) == []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ledger_entries (flow_id, account, amount, currency)"
                     " VALUES (%s, 'merchant:m', 4.00, 'EUR')", (paid,))
        scopes = {scope for scope, _, _ in ledger_problems(database_url)}
        assert scopes == {"currency", "flow", "duplicate"}
        conn.execute("DELETE FROM ledger_entries WHERE id = (SELECT max(id) FROM ledger_entries)")
        conn.execute("UPDATE flows SET status = 'completed' WHERE id = %s", (paid,))
        conn.execute("INSERT INTO flows (id, kind, status, amount, currency, merchant)"
                     " VALUES ('ghost', 'payment', 'completed', 1, 'EUR', 'm')")
        assert [scope for scope, _, _ in ledger_problems(database_url)] == ["unbooked"]
        conn.execute("DELETE FROM flows WHERE id = 'ghost'")
    assert ledger_problems(database_url) == []
