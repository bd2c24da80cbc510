"""Statistics for verdicts that do not flap: seeded bootstrap, Mann-Whitney U, effect size.

A relative expectation (`<= baseline * 1.5`) is judged on the *margin*
`stat(values) - (stat(baseline) * scale + shift)`, where `stat` is a robust location statistic
(the median unless the item aggregates by mean or a high percentile). Both phases' samples are
bootstrapped with a fixed seed, so the same journal always gives the same verdict.

- The `confidence` interval of the margin lies wholly on one side of zero: the verdict is
  *conclusive* at that confidence (held below the limit, failed above it).
- The interval straddles zero: the data cannot tell at that confidence; the verdict follows the
  point estimate of the margin and is marked inconclusive, so a reader knows it sits within noise.

A healthy system (well under its limit) and a degraded one (well over it) land in the conclusive
cases run after run; one unlucky sample cannot flip them, as it can flip an 'every sample' rule.
The Mann-Whitney U p-value and Cliff's delta are reported beside it so a reader sees how large the
change from the baseline is, not only on which side of the limit it lands.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chaoskit.spec.conditions import Threshold

BOOTSTRAP_SEED = 0x5EED  # fixed: a verdict is a function of the journal alone
RESAMPLES = 2000
MAX_DRAWS = 4_000_000  # resamples * samples cap, so huge phases stay fast (fewer resamples)
MIN_SAMPLES = 3  # fewer than this on either side: no test, the point comparison stands
NEGLIGIBLE_DELTA = 0.147  # |Cliff's delta| below this is "negligible" (Romano et al., 2006)

# The location statistic tested for each aggregate. 'every', 'last', 'max' and 'min' are point
# rules that hinge on single samples (the very thing that flaps), so they are tested on the median.
STATISTIC_OF = {"mean": "mean", "p50": "median", "p90": "p90", "p99": "p99"}
GREATER_IS_WORSE = {"<=": True, "<": True, ">=": False, ">": False}


def _quantile(q: float) -> Callable[[Sequence[float]], float]:
    def pick(values: Sequence[float]) -> float:
        ordered = sorted(values)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    return pick


STATISTICS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean, "median": statistics.median,
    "p90": _quantile(0.90), "p99": _quantile(0.99),
}


def statistic_for(aggregate: str | None) -> str:
    return STATISTIC_OF.get(aggregate or "", "median")


@dataclass(frozen=True)
class Outcome:
    """A statistical judgement of one item in one phase against its baseline."""

    held: bool
    conclusive: bool  # the margin interval excludes zero: the verdict holds at `confidence`
    method: str
    statistic: str
    confidence: float
    observed: float  # stat(values)
    baseline: float  # stat(baseline)
    limit: float  # stat(baseline) * scale + shift: what `observed` is held against
    margin: float  # point estimate of stat(values) - limit; its sign says which side it is on
    ci: tuple[float, float]  # `confidence` interval of the margin
    p_value: float  # bootstrap: share of resamples on the violating side of the limit
    mwu_p: float  # Mann-Whitney U one-sided p that values are worse than the scaled baseline
    ratio: float | None  # stat(values) / stat(baseline), the effect as a factor
    ratio_ci: tuple[float, float] | None
    cliffs_delta: float  # vs the raw baseline: +1 all values above it, -1 all below
    cles: float  # common-language effect size: P(value > baseline sample), ties count half
    n: tuple[int, int]  # (baseline samples, phase samples)

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "conclusive": self.conclusive, "statistic": self.statistic,
                "confidence": self.confidence, "observed": _r(self.observed),
                "baseline": _r(self.baseline), "limit": _r(self.limit), "margin": _r(self.margin),
                "ci": [_r(x) for x in self.ci], "p_value": _r(self.p_value),
                "mwu_p": _r(self.mwu_p), "ratio": _r(self.ratio),
                "ratio_ci": None if self.ratio_ci is None else [_r(x) for x in self.ratio_ci],
                "effect": {"cliffs_delta": _r(self.cliffs_delta), "cles": _r(self.cles),
                           "magnitude": delta_magnitude(self.cliffs_delta)},
                "n": list(self.n)}


def _r(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


# -- effect size ------------------------------------------------------------------------------
def _dominance(a: Sequence[float], b: Sequence[float]) -> tuple[int, int]:
    """(pairs with a > b, pairs with a < b), in O(n log n) through a sorted b."""
    import bisect
    ordered = sorted(b)
    greater = less = 0
    for x in a:
        greater += bisect.bisect_left(ordered, x)
        less += len(ordered) - bisect.bisect_right(ordered, x)
    return greater, less


def cliffs_delta(values: Sequence[float], base: Sequence[float]) -> float:
    """P(value > base) - P(value < base): positive when values tend to be larger."""
    greater, less = _dominance(values, base)
    return (greater - less) / (len(values) * len(base))


def common_language(values: Sequence[float], base: Sequence[float]) -> float:
    """P(a random value exceeds a random baseline sample), ties counted half."""
    return (cliffs_delta(values, base) + 1) / 2


def delta_magnitude(delta: float) -> str:
    size = abs(delta)
    for limit, name in ((NEGLIGIBLE_DELTA, "negligible"), (0.33, "small"), (0.474, "medium")):
        if size < limit:
            return name
    return "large"


# -- Mann-Whitney U ---------------------------------------------------------------------------
def _ranks(pooled: Sequence[float]) -> tuple[list[float], float]:
    """Mid-ranks of the pooled samples and the tie term sum(t^3 - t)."""
    order = sorted(range(len(pooled)), key=pooled.__getitem__)
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and pooled[order[j + 1]] == pooled[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    return ranks, ties


def mann_whitney_u(x: Sequence[float], y: Sequence[float],
                   alternative: str = "greater") -> tuple[float, float]:
    """(U of x, p) for 'x is stochastically greater than y' ('greater'), 'less' or 'two-sided'.

    Normal approximation with tie correction and continuity correction, as scipy's
    `mannwhitneyu(method='asymptotic')`; adequate from about 8 samples a side.
    """
    n1, n2 = len(x), len(y)
    ranks, ties = _ranks([*x, *y])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:  # every sample equal: no evidence either way
        return u1, 1.0
    sd = math.sqrt(variance)
    if alternative == "two-sided":
        z = (abs(u1 - mean) - 0.5) / sd
        return u1, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    diff = u1 - mean if alternative == "greater" else mean - u1
    z = (diff - 0.5) / sd
    return u1, 0.5 * math.erfc(z / math.sqrt(2))


# -- bootstrap --------------------------------------------------------------------------------
def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of sorted data (q in [0, 1])."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def interval(replicates: Sequence[float], confidence: float) -> tuple[float, float]:
    ordered = sorted(replicates)
    tail = (1 - confidence) / 2
    return _percentile(ordered, tail), _percentile(ordered, 1 - tail)


def bootstrap_pairs(base: Sequence[float], values: Sequence[float], statistic: str,
                    seed: int = BOOTSTRAP_SEED) -> list[tuple[float, float]]:
    """(stat(baseline resample), stat(values resample)) for each seeded resample."""
    stat = STATISTICS[statistic]
    rng = random.Random(seed)
    rounds = max(200, min(RESAMPLES, MAX_DRAWS // max(1, len(base) + len(values))))
    b, v = list(base), list(values)
    return [(stat(rng.choices(b, k=len(b))), stat(rng.choices(v, k=len(v))))
            for _ in range(rounds)]


def _ratios(pairs: Sequence[tuple[float, float]]) -> list[float] | None:
    if any(b == 0 for b, _ in pairs):
        return None  # a zero baseline (no errors, no lag) has no meaningful ratio
    return [v / b for b, v in pairs]


# -- the judgement ----------------------------------------------------------------------------
def compare_to_baseline(base: list[float], values: list[float], threshold: Threshold,
                        confidence: float, aggregate: str | None = None) -> Outcome | None:
    """Judge `stat(values) OP stat(base) * scale + shift` at `confidence`; None if untestable.

    Untestable: '==' / '!=' (no direction to be worse in), or fewer than MIN_SAMPLES a side;
    the caller then keeps its point comparison.
    """
    if threshold.op not in GREATER_IS_WORSE or min(len(base), len(values)) < MIN_SAMPLES:
        return None
    statistic = statistic_for(aggregate)
    stat = STATISTICS[statistic]
    pairs = bootstrap_pairs(base, values, statistic)
    margins = [v - (b * threshold.scale + threshold.shift) for b, v in pairs]
    low, high = interval(margins, confidence)
    observed, base_stat = stat(values), stat(base)
    limit = base_stat * threshold.scale + threshold.shift
    ratios = _ratios(pairs)
    delta = cliffs_delta(values, base)
    return Outcome(
        held=not _violated(threshold.op, observed - limit, observed - limit),
        conclusive=_violated(threshold.op, low, high) or _satisfied(threshold.op, low, high),
        method=f"bootstrap {statistic} margin + Mann-Whitney U",
        statistic=statistic, confidence=confidence, observed=observed, baseline=base_stat,
        limit=limit, margin=observed - limit, ci=(low, high),
        p_value=sum(_violated(threshold.op, m, m) for m in margins) / len(margins),
        mwu_p=_rank_test_against_limit(base, values, threshold),
        ratio=observed / base_stat if base_stat else None,
        ratio_ci=interval(ratios, confidence) if ratios else None,
        cliffs_delta=delta, cles=(delta + 1) / 2, n=(len(base), len(values)))


def _rank_test_against_limit(base: list[float], values: list[float],
                             threshold: Threshold) -> float:
    """Mann-Whitney U p that the values are worse than the baseline samples scaled to the limit."""
    limit = [b * threshold.scale + threshold.shift for b in base]
    worse_up = GREATER_IS_WORSE[threshold.op]
    return mann_whitney_u(values, limit, "greater" if worse_up else "less")[1]


def _violated(op: str, low: float, high: float) -> bool:
    """Whether the margin interval [low, high] lies wholly on the side `op` forbids."""
    return {"<=": low > 0, "<": low >= 0, ">=": high < 0, ">": high <= 0}[op]


def _satisfied(op: str, low: float, high: float) -> bool:
    """Whether the margin interval [low, high] lies wholly on the side `op` allows."""
    return {"<=": high <= 0, "<": high < 0, ">=": low >= 0, ">": low > 0}[op]


@dataclass(frozen=True)
class Shift:
    """How B's samples differ from A's: the A/B comparison of one item in one phase."""

    statistic: str
    confidence: float
    a: float
    b: float
    ci: tuple[float, float]  # `confidence` interval of stat(B) - stat(A)
    p_value: float  # Mann-Whitney U two-sided
    ratio: float | None
    cliffs_delta: float  # +1: every B sample above every A sample
    n: tuple[int, int]

    @property
    def significant(self) -> bool:
        """The interval excludes no change, the rank test agrees, and the effect is not tiny."""
        excludes_zero = self.ci[0] > 0 or self.ci[1] < 0
        return (excludes_zero and self.p_value < 1 - self.confidence
                and abs(self.cliffs_delta) >= NEGLIGIBLE_DELTA)

    def as_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "confidence": self.confidence, "a": _r(self.a),
                "b": _r(self.b), "ci": [_r(x) for x in self.ci], "p_value": _r(self.p_value),
                "ratio": _r(self.ratio), "cliffs_delta": _r(self.cliffs_delta),
                "significant": self.significant, "n": list(self.n)}


def compare_samples(a: list[float], b: list[float], confidence: float,
                    aggregate: str | None = None) -> Shift | None:
    """B against A with the same statistics as the baseline test; None below MIN_SAMPLES."""
    if min(len(a), len(b)) < MIN_SAMPLES:
        return None
    statistic = statistic_for(aggregate)
    stat = STATISTICS[statistic]
    pairs = bootstrap_pairs(a, b, statistic)
    _, p = mann_whitney_u(b, a, "two-sided")
    sa, sb = stat(a), stat(b)
    return Shift(statistic, confidence, sa, sb, interval([y - x for x, y in pairs], confidence),
                 p, sb / sa if sa else None, cliffs_delta(b, a), (len(a), len(b)))
