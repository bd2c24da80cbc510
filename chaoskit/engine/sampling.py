"""Probe samplers: each probe sampled on its own period, every sample journaled with its phase.

A sample is a number, or None when the probe had nothing to measure (journaled with
`no_data`: it is not evidence either way). A guardrail whose probe cannot be read for
`unreadable_limit` samples in a row trips: a guardrail must not let a run go on blind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaoskit import registry
from chaoskit.engine.guardrails import GuardrailWatch
from chaoskit.errors import ProbeError
from chaoskit.journal import JournalWriter, Kind
from chaoskit.probes.base import WAITED, Explains, ProbeContext
from chaoskit.spec.models import Experiment, ProbeRef

SAMPLE_TIMEOUT = 10.0  # a probe that hangs longer than this is a failed sample, not a hung run


def build_probe(ref: ProbeRef, context: ProbeContext) -> Any:
    cls = registry.get(registry.PROBES, ref.type)
    return cls(cls.Config.model_validate(ref.options()), context)


@dataclass
class Sampler:
    """One probe on one period; guardrails carry a watch that may trip."""

    name: str
    role: str  # "hypothesis" or "guardrail"
    ref: ProbeRef
    probe: Any
    watch: GuardrailWatch | None = None
    last: float | None = None
    unreadable: int = 0  # consecutive samples that could not be read


def build_samplers(experiment: Experiment, context: ProbeContext) -> list[Sampler]:
    samplers = [Sampler(item.name, "hypothesis", item.probe, build_probe(item.probe, context))
                for item in experiment.hypothesis]
    samplers += [Sampler(g.name, "guardrail", g.probe, build_probe(g.probe, context),
                         GuardrailWatch(g)) for g in experiment.guardrails]
    return samplers


Trip = Callable[[Sampler, float | None, str], None]  # sampler, value, why


class SamplingLoop:
    """Runs every sampler until stopped; calls `on_trip` when a guardrail trips."""

    def __init__(self, samplers: list[Sampler], journal: JournalWriter,
                 phase: Callable[[], str], on_trip: Trip) -> None:
        self.samplers = samplers
        self.journal = journal
        self.phase = phase
        self.on_trip = on_trip
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def describe(self) -> None:
        """Journal what each sampler measures and in which unit (reports format with it)."""
        self.journal.write(Kind.PROBES, items={
            s.name: {"role": s.role, "type": s.ref.type, "unit": s.probe.unit()}
            for s in self.samplers})

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(s), name=f"sample-{s.name}")
                       for s in self.samplers]

    async def sample_once(self, sampler: Sampler) -> None:
        began = time.monotonic()
        waited = [0.0]
        token = WAITED.set(waited)  # the sample's task sees it (contexts are copied)
        try:
            raw = await asyncio.wait_for(sampler.probe.sample(), SAMPLE_TIMEOUT)
        except ProbeError as exc:
            self._failed(sampler, exc.render())
            return
        except TimeoutError:
            self._failed(sampler, f"the probe did not answer within {SAMPLE_TIMEOUT:g}s")
            return
        except Exception as exc:  # noqa: BLE001 - a broken probe is a finding, not a crashed run
            self._failed(sampler, f"{type(exc).__name__}: {exc}")
            return
        finally:
            WAITED.reset(token)
        sampler.unreadable = 0
        # how long the sample took, and of that how long it waited on the system (its
        # database's answers to the declared queries, its metrics): a probe slowing down over
        # hours shows, and whether chaoskit or the system is slower
        timing = {"took": round(time.monotonic() - began, 4)}
        if waited[0]:
            timing["waited"] = round(waited[0], 4)
        value = None if raw is None else float(raw)
        sampler.last = value
        if value is None:
            self.journal.write(Kind.SAMPLE, name=sampler.name, role=sampler.role,
                               phase=self.phase(), value=None, no_data=True, **timing)
            return
        detail = sampler.probe.detail() if isinstance(sampler.probe, Explains) else None
        extra = {"detail": detail} if detail else {}
        self.journal.write(Kind.SAMPLE, name=sampler.name, role=sampler.role,
                           phase=self.phase(), value=value, **timing, **extra)
        if sampler.watch and sampler.watch.observe(time.monotonic(), value):
            condition = sampler.watch.guardrail.abort_when
            self.on_trip(sampler, value, f"{value:g} {condition}")

    def _failed(self, sampler: Sampler, error: str) -> None:
        self.journal.write(Kind.PROBE_ERROR, name=sampler.name, role=sampler.role,
                           phase=self.phase(), error=error)
        if sampler.watch is None:
            return
        sampler.unreadable += 1
        limit = sampler.watch.guardrail.unreadable_limit
        if limit and sampler.unreadable == limit:
            self.journal.write(Kind.GUARDRAIL_BLIND, name=sampler.name, samples=limit,
                               error=error)
            self.on_trip(sampler, None, f"could not be read {limit} times in a row "
                                        f"(last: {error})")

    async def _run(self, sampler: Sampler) -> None:
        period = sampler.ref.interval
        next_at = time.monotonic()
        while True:
            await self.sample_once(sampler)
            if self._stopping:  # asyncio.wait_for (3.11) may swallow the stop's cancellation
                return          # when the probe answers at that moment: never sample on then
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def close_probes(self) -> None:
        for sampler in self.samplers:
            with contextlib.suppress(Exception):  # closing is best effort at the end of a run
                await sampler.probe.close()
