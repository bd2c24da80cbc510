"""The one reader of Prometheus text exposition: parse a /metrics body, scrape targets, and keep
scrapes over a window (series values, increases, buckets) for the probes."""

from __future__ import annotations

import asyncio
import difflib
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from chaoskit.errors import ProbeError

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, str, Labels]  # (target URL, sample name, sorted labels)


@dataclass(frozen=True)
class Scrape:
    """Every sample of every target that answered, taken at one monotonic moment."""

    at: float
    reachable: frozenset[str]
    values: Mapping[SeriesKey, float]
    families: frozenset[str] = frozenset()  # declared metrics, also those with no series yet

    def declares(self, metric: str) -> bool:
        """Whether a target declares `metric` (a labelled metric has no series until used)."""
        bases = {metric} | {metric.removesuffix(s) for s in ("_total", "_count", "_sum", "_bucket")}
        return bool(bases & self.families)


def parse_exposition(target: str, text: str,
                     families: set[str] | None = None) -> dict[SeriesKey, float]:
    """All samples of one /metrics body, keyed by target, sample name and labels; the names of
    the metric families go into `families` when given."""
    values: dict[SeriesKey, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            if families is not None:
                families.add(family.name)
            for sample in family.samples:
                key = (target, sample.name, tuple(sorted(sample.labels.items())))
                values[key] = float(sample.value)
    except ValueError as exc:
        raise ProbeError(f"{target} did not serve Prometheus text exposition: {exc}",
                         hint="point the probe at a /metrics endpoint") from None
    return values


def totals(text: str) -> dict[str, float]:
    """Sample name -> sum over its series: what a /metrics body says, label-blind."""
    summed: dict[str, float] = {}
    for (_, name, _), value in parse_exposition("", text).items():
        summed[name] = summed.get(name, 0.0) + value
    return summed


async def scrape_totals(client: httpx.AsyncClient, url: str) -> dict[str, float] | None:
    """`totals` of one target's /metrics; None when it does not answer (or not in the format)."""
    try:
        response = await client.get(url)
        response.raise_for_status()
        return totals(response.text)
    except (httpx.HTTPError, ProbeError):
        return None


async def _fetch(client: httpx.AsyncClient, url: str) -> tuple[str, str | Exception]:
    try:
        response = await client.get(url)
        response.raise_for_status()
        return url, response.text
    except httpx.HTTPError as exc:
        return url, exc


async def scrape_targets(client: httpx.AsyncClient, targets: list[str]) -> Scrape:
    """Scrape all targets at once. A target that does not answer is left out (a killed node
    must not blind the probe); only when none answers is it an error."""
    results = await asyncio.gather(*(_fetch(client, url) for url in targets))
    values: dict[SeriesKey, float] = {}
    reachable, families = [], set[str]()
    for url, body in results:
        if isinstance(body, str):
            values.update(parse_exposition(url, body, families))
            reachable.append(url)
    if not reachable:
        failures = "; ".join(f"{url}: {err!r}" for url, err in results)
        raise ProbeError(f"no metrics target answered ({failures})",
                         hint="check that the services run and serve /metrics at these URLs")
    return Scrape(time.monotonic(), frozenset(reachable), values, frozenset(families))


def matching(scrape: Scrape, names: Iterable[str], labels: Mapping[str, str]) -> list[SeriesKey]:
    """Series of a scrape with one of `names` whose labels include every pair of `labels`."""
    wanted = set(names)
    return [key for key in scrape.values
            if key[1] in wanted and all(dict(key[2]).get(k) == v for k, v in labels.items())]


def unknown_metric(scrape: Scrape, name: str, labels: Mapping[str, str]) -> ProbeError:
    known = sorted({key[1] for key in scrape.values})
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "check the metric name"
    if labels:
        hint += f" and that series with labels {dict(labels)} exist"
    return ProbeError(f"no series '{name}' matching {dict(labels)} on the scraped targets",
                      hint=hint)


class ScrapeWindow:
    """The scrapes covering the last `window` seconds, oldest first."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.scrapes: deque[Scrape] = deque()

    def add(self, scrape: Scrape) -> None:
        self.scrapes.append(scrape)
        horizon = scrape.at - self.window
        # keep one scrape at or before the horizon so the span covers the whole window
        while len(self.scrapes) > 2 and self.scrapes[1].at <= horizon:
            self.scrapes.popleft()

    @property
    def span(self) -> float:
        return self.scrapes[-1].at - self.scrapes[0].at if self.scrapes else 0.0

    def increase(self, key: SeriesKey) -> float:
        """Counter increase of one series over the window, through resets, like PromQL."""
        total, previous, prior_reachable = 0.0, None, False
        for index, scrape in enumerate(self.scrapes):
            value = scrape.values.get(key)
            if value is not None:
                if previous is None:
                    # a series born inside the window started from zero (its target answered
                    # before without it); one first seen at the start only sets the base
                    total += value if index > 0 and prior_reachable else 0.0
                else:
                    total += value - previous if value >= previous else value
                previous = value
            prior_reachable = key[0] in scrape.reachable
        return total

    def keys(self, names: Iterable[str], labels: Mapping[str, str]) -> set[SeriesKey]:
        return {key for scrape in self.scrapes for key in matching(scrape, names, labels)}

    def total_increase(self, names: Iterable[str], labels: Mapping[str, str]) -> float:
        return math.fsum(self.increase(key) for key in self.keys(names, labels))

    def bucket_increases(self, histogram: str, labels: Mapping[str, str]) -> dict[float, float]:
        """Increase per `le` bound, summed over all matching series (sum by (le) in PromQL)."""
        buckets: dict[float, float] = {}
        for key in self.keys([histogram + "_bucket"], labels):
            le = float(dict(key[2])["le"])
            buckets[le] = buckets.get(le, 0.0) + self.increase(key)
        return buckets
