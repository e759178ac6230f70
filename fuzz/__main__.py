"""Run the fuzz targets: `python -m fuzz [--seconds N] [--only NAME ...]`.

Each target runs in a process of its own under atheris for N seconds (default
60), on a working corpus under `artifacts/fuzz/corpus/NAME` that starts from
the target's seeds (`fuzz.seeds`) and keeps what the fuzzer found
interesting, so later runs start where earlier ones stopped. Findings (the
input and its traceback, one per kind of failure) go to
`artifacts/fuzz/findings/`. The table at the end gives, per target, the runs,
the corpus size and the findings; the exit status is 1 when there is any.

`python -m fuzz --replay FILE --only NAME` runs one saved input through its
target and shows what it raises.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fuzz.seeds import ROOT, SEEDS

WORK = Path(os.environ.get("OMNIHUB_ARTIFACTS", ROOT / "artifacts")) / "fuzz"
DICTIONARY = Path(__file__).with_name("tokens.dict")
DONE = re.compile(r"Done (\d+) runs in (\d+) second")


@dataclass(frozen=True, slots=True)
class Outcome:
    target: str
    runs: int
    seconds: int
    corpus: int
    findings: list[str]


def prepare_corpus(name: str) -> Path:
    corpus = WORK / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(SEEDS[name]()):
        (corpus / f"seed-{index}").write_bytes(seed)
    return corpus


def fuzz_one(name: str, seconds: int) -> Outcome:
    corpus, findings = prepare_corpus(name), WORK / "findings"
    command = [sys.executable, "-m", "fuzz.one", name, f"--seconds={seconds}"]
    command += [f"--corpus={corpus}", f"--findings={findings}", f"--dict={DICTIONARY}"]
    log = WORK / f"{name}.log"
    with log.open("w") as output:
        subprocess.run(  # noqa: S603 - our own interpreter and module
            command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, check=False
        )
    text = log.read_text(errors="replace")
    done = DONE.search(text)
    found = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("FINDING ")]
    runs, took = (int(done[1]), int(done[2])) if done else (0, 0)
    return Outcome(name, runs, took, len(list(corpus.iterdir())), found)


def replay(name: str, path: Path) -> None:
    from fuzz.targets import TARGETS, run_one

    run_one(TARGETS[name], path.read_bytes())
    print(f"{name}: {path} passes")


def print_table(outcomes: list[Outcome]) -> None:
    print("| target | runs | seconds | corpus | findings |")
    print("| --- | --- | --- | --- | --- |")
    for o in outcomes:
        found = "; ".join(o.findings) or "none"
        print(f"| {o.target} | {o.runs:,} | {o.seconds} | {o.corpus} | {found} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--only", nargs="+", choices=sorted(SEEDS), default=sorted(SEEDS))
    parser.add_argument("--replay", type=Path, help="run one saved input (with one --only)")
    options = parser.parse_args()
    if options.replay is not None:
        replay(options.only[0], options.replay)
        return
    outcomes = []
    for name in options.only:
        outcomes.append(fuzz_one(name, options.seconds))
        print(f"{name}: {outcomes[-1].runs:,} runs, findings {outcomes[-1].findings}", flush=True)
    print_table(outcomes)
    sys.exit(1 if any(o.findings for o in outcomes) else 0)


if __name__ == "__main__":
    main()
