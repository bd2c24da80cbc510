"""`type: schedule`: promises kept and broken, from the system's own books.

    probe: {type: schedule, promise: refund, measure: on_time_ratio}        # since the run began
    probe: {type: schedule, promise: final_payment, measure: lag_p99, window: 5m}

A promise is what the system declares under `promises:` (a read-only query returning one row
per promise with `state`, `due_at`, `completed_at`, and the mapping of its state words to
completed / pending / failed). The promises counted in a window are those decided in it: due
in it, or completed in it before their due time (kept early). Of those:
    due                 how many
    completed_on_time   completed at or before due_at
    late                completed after due_at
    open_past_due       still pending after due_at (a promise being broken right now)
    failed              failed (no money moved; never on time)
    on_time_ratio       completed_on_time / due; no data when nothing was due (no evidence)
    lag_p50/p99/max     seconds of completed_at - due_at (<= 0 is on time); a promise still
                        open past due counts with now - due_at, a lower bound, so a stalled
                        worker shows as growing lag; percentiles to ~1%, max exact
The database's own clock decides "now"; "since the run began" is the moment the probe was built,
carried over to that clock. The work is done by the database: one grouped query per sample,
whatever the number of promises.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from chaoskit.errors import ProbeError
from chaoskit.probes.base import DeclarationProblem, ProbeConfig, ProbeContext
from chaoskit.probes.books import Books, Dialect, database_url
from chaoskit.probes.prometheus import PrometheusProbe, PrometheusProbeConfig
from chaoskit.spec.system import PromiseSpec
from chaoskit.spec.units import PositiveDuration

Measure = Literal["due", "completed_on_time", "late", "open_past_due", "failed", "on_time_ratio",
                  "lag_p50", "lag_p99", "lag_max"]
PROMISE_COLUMNS = ("state", "due_at", "completed_at")
STATE_WORDS_CHECKED = 200  # distinct state words preflight reads at most


class ScheduleProbeConfig(ProbeConfig):
    promise: str | None = Field(default=None, description="a promise the system declares")
    flow: str | None = Field(default=None, description="older name of `promise`")
    measure: Measure = "on_time_ratio"
    window: PositiveDuration | None = Field(
        default=None, description="the last this long (default: since the run began)")
    database: str | None = Field(default=None, description="default: the promise's database")
    timeout: PositiveDuration = 5.0

    @model_validator(mode="after")
    def _named(self) -> ScheduleProbeConfig:
        if (self.promise is None) == (self.flow is None):
            raise ValueError("name the promise: `promise: refund`")
        return self

    @property
    def name(self) -> str:
        return str(self.promise or self.flow)


def grouped_query(promise: PromiseSpec, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """Outcome, past-due flag, log-scale lag bucket, count and max lag of the promises decided
    in (start, now]; the state words are parameters, never spliced into SQL."""
    assert promise.query is not None
    params: dict[str, Any] = {}
    cases = []
    for outcome, words in promise.states.items():
        names = []
        for word in words:
            params[f"w{len(params)}"] = word
            names.append(f"%(w{len(params) - 1})s")
        cases.append(f"WHEN state IN ({', '.join(names)}) THEN '{outcome}'")
    lag = dialect.lag("COALESCE(completed_at, %(now)s)", "due_at")
    query = f"""
SELECT outcome, past_due, SIGN(lag) * ROUND(LN(ABS(lag) + 0.001) * 100) AS bucket,
       COUNT(*) AS n, MAX(lag) AS top, MIN(state) AS word
  FROM (SELECT CASE {' '.join(cases)} ELSE 'unmapped' END AS outcome,
               CASE WHEN due_at <= %(now)s THEN 1 ELSE 0 END AS past_due,
               {lag} AS lag, state
          FROM ({promise.query}) AS p
         WHERE due_at IS NOT NULL
           AND ((due_at > %(start)s AND due_at <= %(now)s)
                OR (completed_at > %(start)s AND completed_at <= %(now)s
                    AND completed_at <= due_at))) AS decided
 GROUP BY outcome, past_due, SIGN(lag) * ROUND(LN(ABS(lag) + 0.001) * 100)"""
    return query, params


def tally(rows: list[dict[str, Any]], promise: str) -> dict[str, float | None]:
    """Every measure from the grouped rows."""
    unmapped = sorted({str(r["word"]) for r in rows if r["outcome"] == "unmapped"})
    if unmapped:
        raise ProbeError(f"promise '{promise}' has state words {unmapped} that `states:` does "
                         "not map", hint="add them to the promise's states (completed, pending "
                                         "or failed)")
    counts = {"due": 0, "completed_on_time": 0, "late": 0, "open_past_due": 0, "failed": 0}
    lags: list[tuple[float, int]] = []
    top = None
    for r in rows:
        n, outcome, past_due = int(r["n"]), r["outcome"], bool(int(r["past_due"]))
        counts["due"] += n
        bucket = float(r["bucket"] or 0)
        value = math.copysign(math.exp(abs(bucket) / 100) - 0.001, bucket) if bucket else 0.0
        if outcome == "completed":
            counts["completed_on_time" if value <= 0 else "late"] += n
        elif outcome == "failed":
            counts["failed"] += n
        elif past_due:
            counts["open_past_due"] += n
        if outcome == "completed" or (outcome == "pending" and past_due):
            lags.append((value, n))
            top = float(r["top"]) if top is None else max(top, float(r["top"]))
    return {**{k: float(v) for k, v in counts.items()},
            "on_time_ratio": counts["completed_on_time"] / counts["due"] if counts["due"]
            else None,
            "lag_p50": _percentile(lags, 0.5), "lag_p99": _percentile(lags, 0.99),
            "lag_max": top}


def _percentile(lags: list[tuple[float, int]], q: float) -> float | None:
    total = sum(n for _, n in lags)
    if not total:
        return None
    seen, target = 0, max(1, math.ceil(q * total))
    for value, n in sorted(lags):
        seen += n
        if seen >= target:
            return value
    return sorted(lags)[-1][0]


class ScheduleProbe:
    """Counts promises kept and broken in the system's books."""

    type_name: ClassVar[str] = "schedule"
    Config: ClassVar[type[ProbeConfig]] = ScheduleProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, ScheduleProbeConfig)
        self.config = config
        promises = context.system.promises if context.system else {}
        if config.name not in promises:
            raise ProbeError(f"the system declares no promise '{config.name}'",
                             hint=f"declared: {', '.join(promises) or 'none'}; add it under "
                                  "`promises:` in the system")
        self.promise = promises[config.name]
        self.metrics: PrometheusProbe | None = None
        if self.promise.promql is not None:  # the promises live in metrics
            self.metrics = _promql_probe(self.promise, config, context)
            return
        url = database_url(config.database or self.promise.database, context.system,
                           context.platform)
        self.books = Books(url, config.timeout)
        self.query, self.params = grouped_query(self.promise, self.books.dialect)
        self.created = datetime.now(UTC)  # "since the run began": the probe is built then
        self.started: Any = None  # that moment on the database's clock

    async def preflight(self) -> list[DeclarationProblem]:
        """The promise's query against the real books: it runs, returns the columns the
        measures need, and every state word it holds is mapped."""
        if self.metrics is not None:
            return []
        where = ("promises", self.config.name)
        assert self.promise.query is not None
        try:
            columns = {c.lower() for c in await self.books.columns(self.promise.query)}
            missing = [c for c in PROMISE_COLUMNS if c not in columns]
            if missing:
                return [DeclarationProblem((*where, "query"), (
                    f"promise '{self.config.name}': its query returns no column "
                    f"{', '.join(missing)} (it returns {', '.join(sorted(columns)) or 'none'})"),
                    "name them with AS, e.g. SELECT status AS state, due AS due_at, "
                    "done AS completed_at FROM ...")]
            rows = await self.books.rows(
                f"SELECT DISTINCT state FROM ({self.promise.query}) AS q",
                limit=STATE_WORDS_CHECKED)
        except ProbeError as exc:
            return [DeclarationProblem((*where, "query"), f"promise '{self.config.name}': "
                                       f"{exc.message}", exc.hint)]
        mapped = {w for words in self.promise.states.values() for w in words}
        unmapped = sorted({str(r["state"]) for r in rows if r["state"] is not None} - mapped)
        if unmapped:
            return [DeclarationProblem((*where, "states"), (
                f"promise '{self.config.name}': the books hold state words {unmapped} that "
                "`states:` does not map"),
                "map each to completed, pending or failed")]
        return []

    async def _now(self) -> Any:
        return (await self.books.row(f"SELECT {self.books.dialect.now} AS now"))["now"]

    async def counts(self) -> dict[str, float | None]:
        here = datetime.now(UTC)
        now = await self._now()
        if self.started is None:  # the run's start carried over to the database's clock
            naive = isinstance(now, datetime) and now.tzinfo is None
            created, local = ((self.created.replace(tzinfo=None), here.replace(tzinfo=None))
                              if naive else (self.created, here))
            self.started = created + (now - local)
        start = self.started
        if self.config.window is not None:  # the last `window`, whatever the run's age
            start = now - _seconds(self.config.window)
        rows = await self.books.rows(self.query, {**self.params, "now": now, "start": start})
        return tally(rows, self.config.name)

    async def sample(self) -> float | None:
        if self.metrics is not None:
            return await self.metrics.sample()
        return (await self.counts())[self.config.measure]

    def unit(self) -> str:
        measure = self.config.measure
        if measure.startswith("lag_"):
            return "s"
        return "ratio" if measure == "on_time_ratio" else "count"

    async def close(self) -> None:
        if self.metrics is not None:
            await self.metrics.close()
            return
        await self.books.close()


def _promql_probe(promise: PromiseSpec, config: ScheduleProbeConfig,
                  context: ProbeContext) -> PrometheusProbe:
    queries = promise.promql or {}
    if config.measure not in queries:
        raise ProbeError(f"promise '{config.name}' has no PromQL for the measure "
                         f"'{config.measure}'", hint=f"its promql gives: {', '.join(queries)}")
    url = context.system.prometheus if context.system else None
    return PrometheusProbe(PrometheusProbeConfig.model_validate(
        {"url": url, "query": queries[config.measure], "timeout": f"{config.timeout}s"}), context)


def _seconds(value: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=value)
