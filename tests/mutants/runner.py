"""Running the shipped gate experiments against a lab of the reference stack, healthy or with
one defect planted (CHAOSKIT_BROKEN), and reading what the verdict says.

A mutant is killed when a gate experiment fails (exit 1) or is aborted by a guardrail (exit 3):
its failed items (or the guardrail) name what went wrong. An experiment that errs (exit 4) or
is inconclusive (exit 5) kills nothing: that is chaoskit or the lab, not a verdict on money.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoskit.engine.run import RunOptions, run_experiment
from chaoskit.journal import read_journal, result
from chaoskit.spec.loader import load_experiment
from chaoskit.spec.models import Experiment, Target

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
KILLING_EXITS = (1, 3)  # failed, aborted by a guardrail

# Where each mutant is expected to be caught: the experiment tried first. Only an ordering
# hint to keep `make mutants` short: a mutant counts as killed by whichever gate experiment
# fails or aborts on it, and with --all every gate experiment is run against every mutant.
EXPECTED = {
    "no-takeover": "node-loss-final-payment-window",
    "no-standby": "node-loss-final-payment-window",
    "no-idempotency": "resent-requests-slow-db",
    "idempotency-check-then-insert": "resent-requests-slow-db",
    "refund-filed-as-charge": "final-payment-window-at-8pm",
    "deposit-unbooked": "final-payment-window-at-8pm",
    "refund-unbooked": "final-payment-window-at-8pm",
    "timeout-as-declined": "bank-answers-after-timeout",
    "windows-open-late": "final-payment-window-at-8pm",
    "late-orders-never-charged": "final-payment-window-at-8pm",
    "refund-legs-reversed": "final-payment-window-at-8pm",
    "final-payment-to-clearing": "final-payment-window-at-8pm",
    "legs-rounded": "final-payment-window-at-8pm",
    "fresh-bank-key": "bank-answers-after-timeout",
    "refund-sent-as-charge": "final-payment-window-at-8pm",
    "amount-in-cents": "bank-answers-after-timeout",
}


@dataclass
class Verdict:
    """What one experiment said about one stack."""

    experiment: str
    status: str
    exit_code: int
    seconds: float
    failing: list[str] = field(default_factory=list)  # "item [phase]" or "guardrail NAME"
    examples: dict[str, list[Any]] = field(default_factory=dict)  # item -> what it found
    journal: str = ""
    error: str = ""

    @property
    def kills(self) -> bool:
        return self.exit_code in KILLING_EXITS and bool(self.failing)

    def beyond(self, healthy: Verdict | None) -> list[str]:
        """Failing items the healthy stack's run of the same experiment did not fail: on a
        busy machine a latency item may fail either way, and that proves nothing about a
        defect."""
        if healthy is None:
            return list(self.failing)
        known = {f.split(":")[0] for f in healthy.failing}
        return [f for f in self.failing if f.split(":")[0] not in known]

    def kills_beyond(self, healthy: Verdict | None) -> bool:
        return self.kills and bool(self.beyond(healthy))

    @property
    def held(self) -> bool:
        return self.exit_code == 0


def gate_experiments() -> list[Path]:
    """The shipped experiments tagged `gate` (what `make gate` runs)."""
    return [p for p in sorted(EXPERIMENTS.glob("*.yaml"))
            if "gate" in load_experiment(p).metadata.tags]


def ordered(paths: list[Path], first: str | None) -> list[Path]:
    """The gate set with the expected catcher first, the rest in their usual order."""
    return sorted(paths, key=lambda p: p.stem != first)


def on_lab(experiment: Experiment, lab_dir: str) -> Experiment:
    """The experiment pointed at a given lab (shipped ones use the default lab)."""
    target = Target.model_validate({**experiment.target.model_dump(by_alias=True),
                                    "lab": lab_dir})
    return experiment.model_copy(update={"target": target})


def run_against(path: Path, lab_dir: str, out_dir: Path, seed: int = 1) -> Verdict:
    """Run one shipped experiment against the lab at `lab_dir` and read its verdict."""
    experiment = on_lab(load_experiment(path), lab_dir)
    started = time.monotonic()
    outcome = run_experiment(experiment, str(path), RunOptions(seed=seed, out_dir=out_dir))
    records = read_journal(outcome.journal)
    closing = result(records) or {}
    verdict = Verdict(path.stem, outcome.status, outcome.exit_code,
                      time.monotonic() - started, journal=str(outcome.journal),
                      error=outcome.message)
    for v in closing.get("verdicts", []):
        if v.get("status") == "failed":
            name = f"{v['item']} [{v['phase']}]"
            verdict.failing.append(name)
            if v.get("examples"):
                verdict.examples[name] = v["examples"]
    abort = closing.get("abort") or {}
    if abort.get("by") == "guardrail":
        verdict.failing.append(str(abort.get("reason")))  # "guardrail NAME: why"
        tripped = [r for r in records if r["kind"] == "guardrail"]
        name = tripped[-1]["name"] if tripped else ""
        found = [r["detail"]["examples"] for r in records if r["kind"] == "sample"
                 and r.get("name") == name and (r.get("detail") or {}).get("examples")]
        if found:
            verdict.examples[f"guardrail {name}"] = found[-1]
    return verdict


def describe(verdict: Verdict) -> str:
    items = ", ".join(verdict.failing) or "-"
    return (f"{verdict.experiment}: {verdict.status} (exit {verdict.exit_code}, "
            f"{verdict.seconds:.0f}s) {items}")


def examples_text(verdict: Verdict, limit: int = 1) -> list[str]:
    return [f"    {item} e.g. {json.dumps(found[0], default=str)}"
            for item, found in list(verdict.examples.items())[:limit] if found]
