"""The benchmark suite: every benchmark in `bench/`, one table at the end.

    python -m bench                 # full sizes (what the README's table shows)
    python -m bench --small         # CI-sized: the same scenarios, small enough for minutes
    python -m bench --postgres      # on a scratch PostgreSQL database where a benchmark can
    python -m bench --only history gate

Each benchmark runs in a process of its own (its output goes to
`bench/results/<name>.log`, beside the table in `bench/results/summary.md`)
and reports its line through `bench.harness.summarise`: scenario, figure,
the baseline measured in the same run, their ratio and the goal from its
issue. A benchmark that fails to run shows as an error in the table; the
suite exits 1 when any did (a missed goal is a FAIL in the table, not an
error).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import SUMMARY_ENV, Summary

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    small: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)
    postgres: bool = True  # takes --postgres (False: runs on one engine, as its issue says)

    @property
    def module(self) -> str:
        return f"bench.{self.name}"


BENCHMARKS = (
    Benchmark("campaign", small=["--recipients", "10000"]),
    Benchmark("history", small=["--rows", "20000", "--repeat", "100", "--warmup", "10"]),
    Benchmark("gate", small=["--recipients", "10000", "--repeat", "3"]),
    Benchmark("email_intake", small=["--messages", "500"]),
    Benchmark("chat", small=["--clients", "100", "--seconds", "5"], postgres=False),
    Benchmark(
        "fanout",
        small=["--consoles", "50", "--chats", "500", "--events", "200"],
        postgres=False,
    ),
    Benchmark("intake", small=["--start", "10", "--factor", "2", "--seconds", "3"], postgres=False),
    Benchmark(
        "live_path",
        small=["--recipients", "5000", "--seconds", "5", "--rate", "10"],
        postgres=False,
    ),
    Benchmark(
        "lookup",
        small=["--customers", "100000", "--small-customers", "1000", "--repeat", "300"],
    ),
    Benchmark("kpis", small=["--history", "200000", "--repeat", "5", "--warmup", "1"]),
    Benchmark("console_latency", small=["--contacts", "50"]),
    Benchmark("routing", small=["--agents", "50", "--arrivals", "1000"], postgres=True),
    Benchmark("privacy", small=["--rows", "5000", "--other-rows", "20000", "--audit", "10000"]),
)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--small", action="store_true", help="CI-sized runs")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL where it applies")
    names = [benchmark.name for benchmark in BENCHMARKS]
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=", ".join(names))
    return parser.parse_args(argv)


def command(benchmark: Benchmark, arguments: argparse.Namespace) -> list[str]:
    sizes = benchmark.small if arguments.small else benchmark.full
    engine = ["--postgres"] if arguments.postgres and benchmark.postgres else []
    return [sys.executable, "-m", benchmark.module, *sizes, *engine]


def run_one(benchmark: Benchmark, arguments: argparse.Namespace) -> list[Summary] | str:
    """The benchmark's summary lines, or why it produced none."""
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / f"{benchmark.name}.log"
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
        summary_file = Path(handle.name)
    started = time.perf_counter()
    try:
        with log.open("w", encoding="utf-8") as output:
            done = subprocess.run(  # noqa: S603 - our own interpreter and module
                command(benchmark, arguments),
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, SUMMARY_ENV: str(summary_file)},
                check=False,
            )
        lines = summary_file.read_text(encoding="utf-8").splitlines()
    finally:
        summary_file.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    print(f"  {benchmark.module}: exit {done.returncode} after {seconds:.0f} s (log: {log})")
    if done.returncode != 0 or not lines:
        return f"error: exit {done.returncode}" if done.returncode else "error: no summary"
    return [Summary(**json.loads(line)) for line in lines]


def render(rows: list[tuple[str, list[Summary] | str]]) -> list[str]:
    table = [
        "| scenario | figure | baseline (same run) | ratio | goal | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in rows:
        if isinstance(result, str):
            table.append(f"| {name} | {result} | | | | ERROR |")
            continue
        for s in result:
            table.append(
                f"| {s.scenario} | {s.figure} | {s.baseline} | {s.ratio:.3g}x | {s.goal} "
                f"| {s.verdict} |"
            )
    return table


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    chosen = [b for b in BENCHMARKS if not arguments.only or b.name in arguments.only]
    size = "small" if arguments.small else "full"
    engine = "PostgreSQL where it applies" if arguments.postgres else "SQLite"
    print(f"python -m bench: {len(chosen)} benchmarks, {size} sizes, {engine}")
    rows = [(benchmark.name, run_one(benchmark, arguments)) for benchmark in chosen]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    heading = f"python -m bench ({size} sizes, {engine}), {when}, {os.cpu_count()} cores"
    table = render(rows)
    (RESULTS / "summary.md").write_text("\n".join([heading, "", *table, ""]), encoding="utf-8")
    print("\n" + heading + "\n\n" + "\n".join(table))
    if any(isinstance(result, str) for _, result in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
