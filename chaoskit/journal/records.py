"""The catalogue of journal record kinds: what each one means and the fields it carries.

Every line of a journal is one JSON object with `kind`, `t` (run seconds since the journal was
opened, monotonic) and `ts` (wall-clock epoch seconds), plus the fields of its kind below.
Readers match kinds against `Kind`, never against bare strings, so a new kind is added here
first: its name, a line saying what it records, and (for the kinds code reads back) its fields.

    header          the run: id, experiment, source file, seed, pid, spec, platform, lease
    phase           a phase begins: validate, preflight, baseline, inject, recover, rollback
    intent          a fault about to be applied, with everything needed to revert it (fsynced
                    *before* the fault is applied)
    applied         the fault is in place; the driver's facts (activation latency, pids, ...)
    inject-failed   the fault could not be applied (nothing, or part of it, is in place)
    effect          what the fault measurably did (observed latency, recovery time, ...)
    reverted        the fault is undone
    revert-failed   one revert attempt failed (the next attempt, or `chaoskit recover`, goes on)
    audit           the residue audit after the final rollback: residue and errors per fault
    abort           the run is stopped early: by a guardrail, a signal, an error or a recovery
    guardrail       a guardrail tripped: its value and condition
    guardrail-blind a guardrail could not be read several times in a row
    probes          what each hypothesis item and guardrail measures, and in which unit
    sample          one probe sample (value, or null with `no_data` when the window was empty;
                    `took`: seconds the sample took, `waited`: of those, waiting on the
                    system: its database's answers to declared queries, its metrics)
    probe-error     a probe could not be read this time
    load            one second of the load engine (merged across its workers): counts added up,
                    latency percentiles over the second, `load_t` its end on the load's clock,
                    `width` its length (older journals: one record per 100 ms, no `width`)
    load-summary    the load engine's totals for a phase (and whether it kept its schedule)
    load-job        the inject phase's load started as a cluster Job
    event           anything else a reader should see (a second Ctrl-C, a respawned watchdog)
    error           an exception stopped the run, with its traceback
    result          the run's end: status, exit code, verdicts, audit, abort, error

A capacity search's journal (search.jsonl; each step's run has its own journal):
    capacity        the search: experiment, source, seed, its capacity section, parameters
    rate-step       a step about to run: which search (faults or none), its number and rate
    rate-step-ended how it ended: its verdict for the search, exit code, why, its evidence
    result          the search's answer: status, exit code, each search's conclusion, cost
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypedDict

Record = dict[str, Any]
Intent = dict[str, Any]  # a driver's JSON-able description of one fault, enough to revert it


class Kind(StrEnum):
    HEADER = "header"
    PHASE = "phase"
    INTENT = "intent"
    APPLIED = "applied"
    INJECT_FAILED = "inject-failed"
    EFFECT = "effect"
    REVERTED = "reverted"
    REVERT_FAILED = "revert-failed"
    AUDIT = "audit"
    ABORT = "abort"
    GUARDRAIL = "guardrail"
    GUARDRAIL_BLIND = "guardrail-blind"
    PROBES = "probes"
    SAMPLE = "sample"
    PROBE_ERROR = "probe-error"
    LOAD = "load"
    LOAD_SUMMARY = "load-summary"
    LOAD_JOB = "load-job"
    EVENT = "event"
    ERROR = "error"
    RESULT = "result"
    # a game day's plan journal (plan.jsonl): its steps' runs have their own journals
    DAY = "day"
    STEP_STARTED = "step-started"
    STEP_ENDED = "step-ended"
    HOLD = "hold"
    DAY_STOPPED = "day-stopped"
    # a capacity search's journal (search.jsonl): its steps' runs have their own journals
    CAPACITY = "capacity"
    RATE_STEP = "rate-step"
    RATE_STEP_ENDED = "rate-step-ended"


# Records that must survive a crash the moment they are written: fsynced right away.
DURABLE = frozenset({Kind.HEADER, Kind.PHASE, Kind.INTENT, Kind.APPLIED, Kind.REVERTED,
                     Kind.REVERT_FAILED, Kind.ABORT, Kind.AUDIT, Kind.RESULT, Kind.DAY,
                     Kind.STEP_STARTED, Kind.STEP_ENDED, Kind.DAY_STOPPED,
                     Kind.CAPACITY, Kind.RATE_STEP, Kind.RATE_STEP_ENDED})


class HeaderRecord(TypedDict):
    kind: str
    run_id: str
    experiment: str
    source: str
    seed: int
    pid: int
    spec: dict[str, Any]
    platform: dict[str, Any]
    lease: str


class IntentRecord(TypedDict):
    kind: str
    fault: str
    type: str
    intent: Intent


class SampleRecord(TypedDict, total=False):
    kind: str
    t: float
    name: str
    role: str  # "hypothesis" or "guardrail"
    phase: str
    value: float | None
    no_data: bool
    took: float
    waited: float


class AuditFields(TypedDict):
    clean: bool
    residue: dict[str, list[str]]
    errors: dict[str, str]


class ResultRecord(TypedDict, total=False):
    kind: str
    status: str  # held | failed | inconclusive | aborted | error | interrupted | crashed
    exit_code: int
    seed: int
    verdicts: list[dict[str, Any]]
    audit: AuditFields
    abort: dict[str, str] | None
    error: str | None
