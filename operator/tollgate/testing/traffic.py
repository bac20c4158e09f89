"""Seeded traffic between a stable and a canary pod, split by the weight the operator sets.

There is no data plane on our machines, so this stands in for one: every ``tick`` it draws how
many requests arrived (Poisson, mean ``rate * tick``), sends each to the canary with probability
``weight / 100`` (binomial split) and records them in the two :class:`WorkloadExporter`. The
weight comes from an async callable (e.g. reading the HTTPRoute the operator writes, or
``router.get_weight``), so the operator's traffic shifts change what Prometheus sees.

Why per tick, with one random stream each for arrivals, canary and stable: the draws of tick k
depend only on the seed, k and the weights, never on the wall clock. The live task catches up
on missed ticks instead of stretching them, so a live run of k ticks records exactly what
:meth:`TrafficSimulator.advance` records for ``k * tick`` seconds (benchmarks use the latter and
never sleep), and a regression switched on in the canary leaves the stable's draws unchanged.
"""

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tollgate.testing.prometheus import PrometheusServer
from tollgate.testing.workload import WorkloadExporter

# The canary percent, fixed or read each tick; None (e.g. the route's rules disagree) keeps
# the last weight, like a data plane keeps its last good config.
WeightSource = float | Callable[[], Awaitable[float | None]]

_POISSON_CHUNK = 16.0  # Knuth's method needs e^-mean to stay far from underflow


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; large means as a sum of chunks, which stays exact)."""
    if not (math.isfinite(mean) and mean >= 0):
        raise ValueError(f"poisson mean must be finite and >= 0, not {mean}")
    count = 0
    while mean > 0:
        part = min(mean, _POISSON_CHUNK)
        mean -= part
        limit = math.exp(-part)
        product = rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
    return count


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw as n Bernoulli trials: O(n), like recording the n requests anyway."""
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"binomial needs n >= 0 and 0 <= p <= 1, not n={n} p={p}")
    if p == 0.0 or p == 1.0:
        return round(n * p)
    return sum(rng.random() < p for _ in range(n))


@dataclass
class Tally:
    """Requests sent to each version."""

    canary: int = 0
    stable: int = 0

    @property
    def total(self) -> int:
        return self.canary + self.stable

    def add(self, other: "Tally") -> None:
        self.canary += other.canary
        self.stable += other.stable


def register(prometheus: PrometheusServer, exporters: Sequence[WorkloadExporter]) -> None:
    """Make Prometheus scrape exactly these (started) exporters, with namespace/pod labels."""
    prometheus.set_targets([e.target for e in exporters])


class TrafficSimulator:
    """``rate`` requests per second split between ``stable`` and ``canary`` by the weight."""

    def __init__(
        self,
        rate: float,
        weight: WeightSource,
        stable: WorkloadExporter,
        canary: WorkloadExporter,
        seed: int | str = 0,
        tick: float = 0.1,
    ) -> None:
        if rate < 0 or tick <= 0:
            raise ValueError("rate must be >= 0 and tick > 0")
        self.rate = rate
        self.source = weight
        self.stable = stable
        self.canary = canary
        self.tick = tick
        # Read before the first tick and kept when a read fails: 0 until the source answers.
        self.percent = 0.0 if callable(weight) else _checked(weight)
        self.sent = Tally()
        self.ticks = 0
        self.weight_errors = 0
        self.last_error: Exception | None = None
        self._arrivals = random.Random(f"{seed}/arrivals")
        self._canary_rng = random.Random(f"{seed}/canary")
        self._stable_rng = random.Random(f"{seed}/stable")
        self._carry = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def exporters(self) -> tuple[WorkloadExporter, WorkloadExporter]:
        return self.stable, self.canary

    def register(self, prometheus: PrometheusServer) -> None:
        """Make Prometheus scrape both exporters (and nothing else)."""
        register(prometheus, self.exporters)

    async def read_weight(self) -> float:
        """The canary percent now; on a failed or unusable read, the last one."""
        if not callable(self.source):
            self.percent = _checked(self.source)
            return self.percent
        try:
            value = await self.source()
            if value is not None:
                self.percent = _checked(value)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the API server may be down: traffic keeps flowing
            self.weight_errors += 1
            self.last_error = error
        return self.percent

    # -- deterministic stepping ---------------------------------------------------------------

    def step(self, percent: float) -> Tally:
        """One tick of traffic at ``percent`` canary weight."""
        share = _checked(percent) / 100.0
        n = poisson(self._arrivals, self.rate * self.tick)
        canary = binomial(self._arrivals, n, share)
        self.canary.record(canary, self._canary_rng)
        self.stable.record(n - canary, self._stable_rng)
        self.ticks += 1
        done = Tally(canary=canary, stable=n - canary)
        self.sent.add(done)
        return done

    def advance_at(self, seconds: float, percent: float) -> Tally:
        """Record ``seconds`` of traffic at ``percent`` now, without sleeping.

        Whole ticks only; the remainder carries over to the next call, so ten calls of 0.05 s
        at tick 0.1 s record five ticks.
        """
        if self._task is not None:
            raise RuntimeError("advance while the live task runs would interleave their draws")
        self._carry += seconds
        ticks = math.floor(self._carry / self.tick + 1e-9)
        self._carry = max(0.0, self._carry - ticks * self.tick)
        done = Tally()
        for _ in range(ticks):
            done.add(self.step(percent))
        return done

    async def advance(self, seconds: float) -> Tally:
        """Read the weight once, then record ``seconds`` of traffic at it without sleeping."""
        return self.advance_at(seconds, await self.read_weight())

    # -- live ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Run ticks on the wall clock in a task of the running loop until :meth:`stop`."""
        if self._task is not None:
            raise RuntimeError("simulator already running")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="traffic")

    async def stop(self) -> None:
        """Stop the task; re-raises what made it fail, if anything did."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])  # not `await task`: a cancel of stop() itself must propagate
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        began, done = loop.time(), 0
        while True:
            due = math.floor((loop.time() - began) / self.tick)
            if due > done:
                percent = await self.read_weight()
                for _ in range(due - done):  # catch up after a stall: same draws, later
                    self.step(percent)
                done = due
            await asyncio.sleep(max(0.0, began + (done + 1) * self.tick - loop.time()))

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _checked(percent: float) -> float:
    value = float(percent)
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"canary weight must be within 0..100 percent, not {percent}")
    return value
