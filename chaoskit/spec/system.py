"""What the system under test is, as its users declare it: flows, promises, money checks, roles.

A `kind: System` file (or the `system:` mapping of an experiment) describes a payment stack in
its own words, so experiments, load and probes need no knowledge of any particular stack:

    flows           requests clients send: method, path, headers, query, JSON/form body as
                    templates; what counts as success; values captured from responses
    databases       where the system keeps its books (PostgreSQL or MySQL/MariaDB URLs)
    promises        what "on schedule" means: a read-only query returning one row per promise
                    (state, due_at, completed_at) and the mapping of its state words
    checks          money checks: read-only queries returning the rows that violate them
    acknowledged    how to find a request clients were told succeeded in the books
    reconciliations two read-only queries (the counterparty's record, the books) compared
                    both ways
    roles           how to find the node that hosts a role (a metric, an HTTP endpoint, a
                    query, a Kubernetes Lease or label selector)
Pure: parsing and checking only.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chaoskit.spec.templates import parse_template, templates_in
from chaoskit.spec.units import Duration

_NAME = r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"
_WRITE = re.compile(r"^\s*(insert|update|delete|merge|upsert|replace|create|drop|alter|"
                    r"truncate|grant|revoke|call|do|copy|lock|set|vacuum)\b", re.I)
STATES = ("completed", "pending", "failed")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def read_only(query: str) -> str:
    """A read-only query (SELECT or WITH ... SELECT); writes are refused by name."""
    body = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S).strip().rstrip(";").strip()
    if ";" in body:
        raise ValueError("one statement only: remove the ';' inside the query")
    if _WRITE.match(body) or re.search(r"\b(insert|update|delete)\s+(into|from|\w+\s+set)\b",
                                       body, re.I):
        raise ValueError("this is a write statement; chaoskit only reads your books: write a "
                         "SELECT (or WITH ... SELECT)")
    if not re.match(r"^\s*(select|with|\()", body, re.I):
        raise ValueError("expected a SELECT (or WITH ... SELECT) query")
    return query


# -- flows ------------------------------------------------------------------------------------
class RequestSpec(Strict):
    """One HTTP request as templates (see chaoskit.spec.templates for `{{ ... }}`)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(description="URL path after the entry, e.g. /v1/payments/{{ payment }}")
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json", description="a JSON body (templates in "
                           "its strings; a string that is one {{ }} keeps its type)")
    form: dict[str, str] | None = Field(default=None, description="a form-encoded body")
    body: str | None = Field(default=None, description="a raw body (text template)")

    @model_validator(mode="after")
    def _one_body(self) -> RequestSpec:
        given = [n for n in ("json_body", "form", "body") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError("give one body: json, form or body")
        return self

    def strings(self) -> list[str]:
        return [self.path, *templates_in(self.query), *templates_in(self.headers),
                *templates_in(self.json_body), *templates_in(self.form), self.body or ""]


class Success(Strict):
    """Which answers count as success: statuses (default: any 2xx), and body fields."""

    status: list[int] = Field(default_factory=list, description="default: any 2xx")
    json_fields: dict[str, list[Any]] = Field(default_factory=dict, alias="json", description=(
        "JSON pointer -> accepted values, e.g. {/state: [CAPTURED]}"))


class Capture(Strict):
    """A value taken from a successful answer, for later flows (`{{ name }}`)."""

    json_pointer: str | None = Field(default=None, alias="json", description=(
        "JSON pointer (/refund/refund_ref) or path ($.refund.refund_ref)"))
    header: str | None = Field(default=None, description="a response header, e.g. Location")
    uses: int = Field(default=1, ge=1, le=1_000_000, description=(
        "how many requests may use one captured value (a refund of a payment: 1)"))

    @model_validator(mode="after")
    def _one_source(self) -> Capture:
        if (self.json_pointer is None) == (self.header is None):
            raise ValueError("capture from one place: `json: /pointer` or `header: Name`")
        if self.json_pointer is not None and not self.json_pointer.startswith(("/", "$")):
            raise ValueError("a JSON pointer starts with '/' (or a path with '$.')")
        return self


class FlowSpec(Strict):
    request: RequestSpec
    success: Success = Field(default_factory=Success)
    captures: dict[str, Capture] = Field(default_factory=dict)
    otherwise: str | None = Field(default=None, description=(
        "the flow sent instead while a value this flow needs has not been captured yet "
        "(default: the arrival is skipped and counted as starved)"))
    books: bool = Field(default=True, description=(
        "a success creates a record in the books (checked by `acknowledged`)"))
    moves: Literal["from-customer", "to-customer"] | None = Field(default=None, description=(
        "which way a success moves the customer's money once it is done (a payment: "
        "from-customer; a refund: to-customer); the `acknowledged` probe's `misdirected` "
        "measure checks the books agree"))


# -- books ------------------------------------------------------------------------------------
class DatabaseSpec(Strict):
    url: str = Field(description="postgresql://... or mysql://... (read-only access is enough)")


PROMISE_MEASURES = ("due", "completed_on_time", "late", "open_past_due", "failed",
                    "on_time_ratio", "lag_p50", "lag_p99", "lag_max")


class PromiseSpec(Strict):
    """What "on schedule" means in the system's books. Either a read-only SQL query returning
    one row per promise (columns `state`, `due_at`, `completed_at`; others ignored) with the
    mapping of its state words, or, when the promises live in metrics, one PromQL query per
    measure the experiments read (`promql: {on_time_ratio: '...', lag_p99: '...'}`)."""

    query: str | None = Field(default=None, description=(
        "read-only SQL: one row per promise with state, due_at, completed_at"))
    database: str | None = Field(default=None, description="a name from `databases` "
                                 "(default: the only one, or target.database)")
    states: dict[Literal["completed", "pending", "failed"], list[str]] = Field(
        default_factory=dict, description=(
            "your state words for each outcome, e.g. {completed: [SETTLED], pending: "
            "[REQUESTED]}"))
    promql: dict[str, str] | None = Field(default=None, description=(
        f"PromQL per measure ({', '.join(PROMISE_MEASURES)}), each answering one number, "
        "read from the system's `prometheus:` (or the platform's)"))

    @field_validator("query")
    @classmethod
    def _read_only(cls, value: str | None) -> str | None:
        return None if value is None else read_only(value)

    @field_validator("promql")
    @classmethod
    def _measures(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        unknown = sorted(set(value or {}) - set(PROMISE_MEASURES))
        if unknown:
            raise ValueError(f"promql names measures {unknown}; the measures are "
                             f"{', '.join(PROMISE_MEASURES)}")
        return value

    @model_validator(mode="after")
    def _states_given(self) -> PromiseSpec:
        if (self.query is None) == (self.promql is None):
            raise ValueError("give a promise either `query:` (SQL over your books) or "
                             "`promql:` (a query per measure), not both")
        if self.promql is not None:
            return self
        if "completed" not in self.states or "pending" not in self.states:
            raise ValueError("states needs at least `completed:` and `pending:` word lists")
        words = [w for ws in self.states.values() for w in ws]
        twice = sorted({w for w in words if words.count(w) > 1})
        if twice:
            raise ValueError(f"state words {twice} are mapped to more than one outcome")
        return self


class CheckSpec(Strict):
    """A money check: the query returns the rows that violate it (none when money is safe)."""

    query: str
    database: str | None = None
    description: str = ""

    @field_validator("query")
    @classmethod
    def _read_only(cls, value: str) -> str:
        return read_only(value)


class AcknowledgedSpec(Strict):
    """Finds acknowledged requests in the books: the query takes the keys as `%(keys)s` (a
    list: `= ANY(%(keys)s)` on PostgreSQL, `IN %(keys)s` on MySQL) and returns `key`, `n`
    (how many times the books hold it) and, for flows that declare `moves:`, `moved`: the
    customer's net change in the books for that request once it is done (negative when the
    customer paid; NULL while it is still in flight or when it failed), and optionally
    `amount`, the request's amount as booked (|moved| must equal it)."""

    query: str
    database: str | None = None
    key: str = Field(default="key", description="the template variable or capture to look up")

    @field_validator("query")
    @classmethod
    def _read_only(cls, value: str) -> str:
        return read_only(value)


class ReconciliationSpec(Strict):
    """The counterparty's record (e.g. the bank's executed operations) against the books:
    both queries return `ref` (the shared reference), and may return `at` (when the row was
    written); every ref must be on both sides once, and every other column both sides return
    (amount, operation, currency, ...) must agree (numbers as numbers: 12.3 = 12.30)."""

    description: str = ""
    counterparty: str = Field(description="a read-only query over the counterparty's record")
    books: str = Field(description="a read-only query over the books")
    counterparty_database: str | None = None
    books_database: str | None = None
    settle: Duration = Field(default=0.0, description=(
        "a ref on one side only is not a mismatch until its row is this old (the other side "
        "may still be writing it); needs the `at` column"))

    @field_validator("counterparty", "books")
    @classmethod
    def _read_only(cls, value: str) -> str:
        return read_only(value)


class RoleSpec(Strict):
    """How to find the node hosting a role. One of:
    metric: a Prometheus metric the services export, with `label` naming the node
            (equals: the value that marks the role, e.g. 1 for a leader; or pick: max/min)
    http:   a URL answering JSON, `pointer` to the node's name (a path: through the entry)
    sql:    a query whose first column of the first row names it
    lease / selector: a Kubernetes Lease's holder's node / the node of the first pod matching
    `names: pod` when what is found is a pod's name (its node is looked up on the cluster).
    A role may list several finders: the first that finds a node wins (e.g. a metric in the
    lab, a selector on a cluster, where the metrics are not reachable)."""

    metric: str | None = None
    label: str = "node"
    equals: float | None = None
    pick: Literal["max", "min"] | None = None
    http: str | None = None
    pointer: str | None = None
    sql: str | None = None
    database: str | None = None
    lease: str | None = Field(default=None, description="NAMESPACE/NAME of a Lease")
    selector: str | None = Field(default=None, description="a pod label selector")
    names: Literal["node", "pod"] = Field(default="node", description=(
        "what the finder returns: a node's name, or a pod's (its node is looked up)"))

    @model_validator(mode="after")
    def _one_finder(self) -> RoleSpec:
        given = [n for n in ("metric", "http", "sql", "lease", "selector")
                 if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("name one way to find the role: metric, http, sql, lease or "
                             "selector")
        if self.metric is not None and (self.equals is None) == (self.pick is None):
            raise ValueError("a metric role needs `equals:` (e.g. 1) or `pick: max|min`")
        if self.sql is not None:
            read_only(self.sql)
        return self


class SystemSpec(Strict):
    flows: dict[str, FlowSpec] = Field(default_factory=dict)
    databases: dict[str, DatabaseSpec] = Field(default_factory=dict)
    promises: dict[str, PromiseSpec] = Field(default_factory=dict)
    checks: dict[str, CheckSpec] = Field(default_factory=dict)
    acknowledged: AcknowledgedSpec | None = None
    reconciliations: dict[str, ReconciliationSpec] = Field(default_factory=dict)
    roles: dict[str, RoleSpec | list[RoleSpec]] = Field(default_factory=dict)
    prometheus: str | None = Field(default=None, description=(
        "the Prometheus that holds the system's metrics (PromQL promises; default: the "
        "platform's)"))

    def finders(self, role: str) -> list[RoleSpec]:
        found = self.roles[role]
        return found if isinstance(found, list) else [found]

    @field_validator("flows", "promises", "checks", "roles", "databases", "reconciliations")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [n for n in value if not re.match(_NAME, n)]
        if bad:
            raise ValueError(f"names {bad} must be lowercase letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _references_known(self) -> SystemSpec:
        """Names that point elsewhere in the declarations (templates are checked, with their
        positions, by spec.validate.check_flows)."""
        for name, flow in self.flows.items():
            if flow.otherwise is not None and flow.otherwise not in self.flows:
                raise ValueError(f"flow '{name}': otherwise '{flow.otherwise}' is not a flow")
        self._databases_known()
        return self

    def captured(self) -> set[str]:
        return {c for f in self.flows.values() for c in f.captures}

    def _databases_known(self) -> None:
        named = [(f"promise '{n}'", p.database) for n, p in self.promises.items()]
        named += [(f"check '{n}'", c.database) for n, c in self.checks.items()]
        named += [("acknowledged", self.acknowledged.database)] if self.acknowledged else []
        for n, r in self.reconciliations.items():
            named += [(f"reconciliation '{n}'", r.counterparty_database),
                      (f"reconciliation '{n}'", r.books_database)]
        for what, database in named:
            if database is not None and database not in self.databases:
                raise ValueError(f"{what} reads database '{database}', which `databases:` "
                                 f"does not name ({', '.join(self.databases) or 'none'})")

    def needs(self, flow: str) -> set[str]:
        """Captured values a flow reads (it waits for them, or sends `otherwise`)."""
        captured = {c for f in self.flows.values() for c in f.captures}
        spec = self.flows[flow]
        return {n for text in spec.request.strings()
                for n in parse_template(text).names if n in captured}
