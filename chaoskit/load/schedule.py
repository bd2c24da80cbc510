"""The arrival schedule: when each request is due and which flow it is, fixed by the seed.

Arrival k sits at count position k + j_k on the cumulative intended count N(t) = ∫ rate, with a
jitter j_k in [0, 1) drawn from the seed. So every window holds its intended count to within one
request (no Poisson noise to blur rate accuracy), yet arrivals are not a metronome. Jitter and
flow come from seeded blocks of 1024 arrivals, so worker i can take arrivals i, i+N, ... without
generating the others, and the schedule does not depend on the number of workers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from chaoskit.load.curve import Curve

SLICE = 0.001  # run seconds of constant rate in the integration; 1 ms keeps a spike sharp
_BLOCK_BITS = 10
_BLOCK_MASK = (1 << _BLOCK_BITS) - 1


@dataclass(frozen=True)
class Arrival:
    t: float    # intended send time, run seconds
    k: int      # global arrival index: unique in the run, makes the idempotency key
    flow: int   # index into the mix's flows


class _SeededBlocks:
    """Jitter and flow of arrivals, 1024 at a time, from a generator seeded by (seed, block)."""

    def __init__(self, seed: int, weights: list[float]) -> None:
        self._seed = seed
        self._cum = list(accumulate(weights))
        self.jitter: list[float] = []
        self.flows: list[int] = []

    def fill(self, block: int) -> tuple[list[float], list[int]]:
        rng = random.Random(f"arrivals:{self._seed}:{block}")
        size = _BLOCK_MASK + 1
        self.jitter = [rng.random() for _ in range(size)]
        if len(self._cum) == 1:
            self.flows = [0] * size
        else:
            self.flows = rng.choices(range(len(self._cum)), cum_weights=self._cum, k=size)
        return self.jitter, self.flows


class ArrivalSchedule:
    """One worker's share of the arrivals (k = worker, worker + workers, ...), in time order."""

    def __init__(self, curve: Curve, *, seed: int, weights: list[float],
                 worker: int = 0, workers: int = 1) -> None:
        self._curve = curve
        self._blocks = _SeededBlocks(seed, weights)
        self._step = workers
        self._slice = 0          # next slice to integrate
        self._count = 0.0        # cumulative intended count at that slice's start
        self._k = worker
        self._pos = worker + self._blocks.fill(worker >> _BLOCK_BITS)[0][worker & _BLOCK_MASK]

    @property
    def exhausted(self) -> bool:
        return self._slice * SLICE >= self._curve.run_seconds

    def take_until(self, t_end: float) -> tuple[list[float], list[int], list[int]]:
        """Arrivals of every slice starting before `t_end`: (times, indices, flows)."""
        times: list[float] = []
        ks: list[int] = []
        flows: list[int] = []
        run_end = self._curve.run_seconds
        rate_run, blocks = self._curve.rate_run, self._blocks
        k, pos, count, step = self._k, self._pos, self._count, self._step
        jitters, block_flows, block = blocks.jitter, blocks.flows, k >> _BLOCK_BITS
        while self._slice * SLICE < min(t_end, run_end):
            start = self._slice * SLICE
            width = min(SLICE, run_end - start)
            rate = rate_run(start + width / 2)
            top = count + rate * width
            while pos < top:  # the hot loop: one pass per arrival of this worker
                times.append(start + (pos - count) / rate)
                ks.append(k)
                flows.append(block_flows[k & _BLOCK_MASK])
                k += step
                if k >> _BLOCK_BITS != block:
                    block = k >> _BLOCK_BITS
                    jitters, block_flows = blocks.fill(block)
                pos = k + jitters[k & _BLOCK_MASK]
            count = top
            self._slice += 1
        self._k, self._pos, self._count = k, pos, count
        return times, ks, flows

    def __iter__(self) -> Iterator[Arrival]:
        while not self.exhausted:
            times, ks, flows = self.take_until(self._slice * SLICE + 0.1)
            yield from (Arrival(t, k, f) for t, k, f in zip(times, ks, flows, strict=True))
