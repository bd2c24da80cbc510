"""Preflight: everything checked before anything is injected, as one list of problems.

The platform's own checks, the abilities every fault needs, the scope against every target
each fault touches, targets another live run holds, and the load: its host inside the scope,
its rate and length under the caps.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from chaoskit.engine import claims
from chaoskit.engine.lifecycle import build_driver
from chaoskit.engine.timeline import PlannedFault
from chaoskit.errors import Problem, SpecError
from chaoskit.faults.base import PreflightChecks, Touch
from chaoskit.journal import Intent
from chaoskit.load.shapes import curve_of
from chaoskit.platforms.abilities import Entry, OwnHosts, Platform, missing
from chaoskit.probes.base import ProbeChecks
from chaoskit.spec import scope as scope_rules
from chaoskit.spec.load import LoadSpec
from chaoskit.spec.models import Experiment
from chaoskit.spec.units import format_duration


async def check(experiment: Experiment, platform: Platform, planned: list[PlannedFault],
                run: str, source: str, seed: int) -> tuple[list[str], set[str]]:
    """(problems, the claim keys of every target the faults touch). Raises SpecError when the
    load is over its caps (bad input, pointed at its line)."""
    problems = list(await platform.preflight())
    problems += ability_problems(planned, platform, run)
    keys: set[str] = set()
    placed = [pf for pf in planned if not pf.waiting]  # the others are checked when they start
    for pf in placed:
        problems += scope_problems(experiment, pf, pf.intent, platform, run)
        keys |= {t.claim() for t in touches(pf, pf.intent, platform, run)}
    if not problems:  # the drivers' own checks assume their abilities are there
        for pf in placed:
            driver = build_driver(pf.type, platform, run)
            if isinstance(driver, PreflightChecks):
                problems += [f"{pf.name}: {p}" for p in await driver.preflight(pf.intent)]
    problems += claims.conflicts(run, keys)
    problems += load_problems(experiment, platform, source, seed)
    return problems, keys


async def probe_problems(samplers: list[Any], experiment: Experiment,
                         source: str) -> list[Problem]:
    """What the real system refuses of the probes' declarations (a promise query without its
    columns, an unmapped state word), each pointed at its file and line."""
    from chaoskit.spec.loader import problem_at
    found: list[Problem] = []
    seen: set[tuple[str | int, ...]] = set()
    path, prefix = experiment.system_source(source)
    for sampler in samplers:
        if not isinstance(sampler.probe, ProbeChecks):
            continue
        for problem in await sampler.probe.preflight():
            if problem.loc in seen:  # two items reading one promise: said once
                continue
            seen.add(problem.loc)
            found.append(problem_at(path, (*prefix, *problem.loc),
                                    f"{problem.message} (checked for {sampler.name})",
                                    problem.hint))
    return found


def check_caps(experiment: Experiment, source: str, seed: int) -> None:
    """SpecError (bad input, nothing started) when the load is over its caps."""
    load = experiment.load
    if load is None:
        return
    caps = cap_problems(load, curve_of(load, seed).peak_rate(), source)
    if caps:
        raise SpecError(caps)


def load_problems(experiment: Experiment, platform: Platform, source: str,
                  seed: int) -> list[str]:
    load = experiment.load
    if load is None:
        return []
    check_caps(experiment, source, seed)
    entry = entry_url(experiment, platform, load.target)
    if entry is None:
        return ["the load has no target: set target.entry (the platform offers no entry)"]
    problem = load_host_problem(experiment, entry, platform)
    return [problem] if problem else []


def entry_url(experiment: Experiment, platform: Platform, target: str) -> str | None:
    if target.startswith(("http://", "https://")):
        return target
    if experiment.target.entry:
        return experiment.target.entry
    return platform.entry_url() if isinstance(platform, Entry) else None


def ability_problems(planned: list[PlannedFault], platform: Platform, run: str) -> list[str]:
    problems = []
    for pf in planned:
        if pf.config is None:
            continue
        driver = build_driver(pf.type, platform, run)
        problems += [f"{pf.name}: {p}" for p in missing(platform, driver.needs(pf.config))]
    return problems


def touches(pf: PlannedFault, intent: Intent, platform: Platform, run: str) -> list[Touch]:
    return build_driver(pf.type, platform, run).touches(intent)


def scope_problems(experiment: Experiment, pf: PlannedFault, intent: Intent,
                   platform: Platform, run: str) -> list[str]:
    """Every target the fault touches, against target.scope (spec.scope's rules)."""
    destructive = bool(build_driver(pf.type, platform, run).destructive)
    found = [scope_rules.problem(experiment.target.scope, t.kind, t.name,
                                 destructive=destructive)
             for t in touches(pf, intent, platform, run)]
    return [f"{pf.name}: {p}" for p in found if p]


def claim_problems(run: str, keys: set[str]) -> list[str]:
    return claims.conflicts(run, keys)


def load_host_problem(experiment: Experiment, entry_url: str, platform: Platform) -> str | None:
    host = urlsplit(entry_url).hostname or ""
    own = platform.own_hosts() if isinstance(platform, OwnHosts) else []
    return scope_rules.host_problem(experiment.target.scope, host, own)


def cap_problems(load: LoadSpec, peak: float, source: str) -> list[Problem]:
    """Rate and length above the load's caps, pointed at the experiment's lines."""
    from chaoskit.spec.loader import problem_at

    found = []
    if peak > load.caps.rate * 1.0001:
        found.append(problem_at(source, ("load", "profile"),
                                f"the load peaks at {peak:,.0f}/s, above its cap of "
                                f"{load.caps.rate:,.0f}/s",
                                "lower the profile, or raise load.caps.rate if you mean to "
                                "send that much"))
    if load.run_seconds() > load.caps.duration:
        found.append(problem_at(source, ("load", "duration"),
                                f"the load runs {format_duration(load.run_seconds())} of wall "
                                f"clock, above its cap of {format_duration(load.caps.duration)}",
                                "shorten it (or compress it with time_scale), or raise "
                                "load.caps.duration"))
    return found
