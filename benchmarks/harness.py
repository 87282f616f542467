"""The timing harness: every contender of an operation called in turn, call by call.

Interleaving gives every contender the same cache, pool and machine-load state, which matters
on a shared box more than any single number. Each round calls the contenders in a fresh
random order (seeded): every contender then follows every other equally often. A call runs
slower after a heavy one (whose objects and code pushed its own out of the CPU caches), so
a fixed rotation was not fair: beside the peers it made raw follow sets-db in three rounds
of four, and sets-db follow the Tortoise peer, which alone moved the first page's ratio
from 1.29 to 1.41 in one run. An operation is timed ``repeats`` times; the table shows the
range of the per-repeat ratios to raw.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

RAW = "raw"
Call = Callable[[int], Awaitable[Any]]
# Turns one contender's answer into something comparable with the others'.
Shape = Callable[[Any], Any]


@dataclass(frozen=True)
class Contender:
    call: Call
    shape: Shape


@dataclass(frozen=True)
class Operation:
    name: str
    contenders: Mapping[str, Contender]


@dataclass
class Timings:
    """p50/p95 in ms per contender, one entry per repeat."""

    operation: str
    p50: dict[str, list[float]] = field(default_factory=dict)
    p95: dict[str, list[float]] = field(default_factory=dict)

    def ratios(self, name: str, which: str = "p50") -> list[float]:
        values = self.p50 if which == "p50" else self.p95
        return [mine / raw for mine, raw in zip(values[name], values[RAW], strict=True)]


def quantile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class DifferentAnswers(AssertionError):
    pass


async def check(operation: Operation, call_number: int = 0) -> None:
    """Every contender returns the same data as the first one (sets-db)."""
    shaped = {
        name: contender.shape(await contender.call(call_number))
        for name, contender in operation.contenders.items()
    }
    first_name, first = next(iter(shaped.items()))
    for name, value in shaped.items():
        if value != first:
            raise DifferentAnswers(f"{operation.name}: {name} differs from {first_name}")


async def interleaved(operation: Operation, *, warmup: int, iterations: int) -> dict[str, Any]:
    """Per contender: the elapsed seconds of ``iterations`` calls after ``warmup`` calls."""
    names = list(operation.contenders)
    elapsed: dict[str, list[float]] = {name: [] for name in names}
    order = random.Random(operation.name)
    gc.collect()
    for i in range(warmup + iterations):
        for name in order.sample(names, len(names)):
            call = operation.contenders[name].call
            started = time.perf_counter()
            await call(i)
            if i >= warmup:
                elapsed[name].append(time.perf_counter() - started)
    return elapsed


async def run(
    operations: list[Operation], *, repeats: int, warmup: int, iterations: int
) -> list[Timings]:
    results = {op.name: Timings(op.name) for op in operations}
    for _ in range(repeats):
        for op in operations:
            elapsed = await interleaved(op, warmup=warmup, iterations=iterations)
            timings = results[op.name]
            for name, values in elapsed.items():
                timings.p50.setdefault(name, []).append(quantile_ms(values, 0.5))
                timings.p95.setdefault(name, []).append(quantile_ms(values, 0.95))
    return list(results.values())


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def table(results: list[Timings], contenders: list[str]) -> str:
    """Markdown: raw's and the first contender's p50/p95 in ms (median over the repeats), then
    each contender's ratio to raw (p50; p95), each the range over the repeats."""
    first = contenders[0]
    header = ["operation", "raw p50 / p95 ms", f"{first} p50 / p95 ms"]
    header += [f"{name} / raw (p50; p95)" for name in contenders]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        cells = [
            result.operation,
            f"{_median(result.p50[RAW]):.2f} / {_median(result.p95[RAW]):.2f}",
            f"{_median(result.p50[first]):.2f} / {_median(result.p95[first]):.2f}",
        ]
        for name in contenders:
            if name in result.p50:
                cells.append(f"{_span(result.ratios(name))}; {_span(result.ratios(name, 'p95'))}")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
