"""One target under atheris (libFuzzer), in a process of its own: `python -m fuzz.one NAME`.

The modules the target reaches are instrumented for coverage. A failing input
does not end the run: each distinct failure (exception type, the line it came
from, and for an invariant the kind of breach) is written once to the findings
folder, the input beside its traceback, and the fuzzer carries on, so a run of
a few minutes reports every kind of failure it met, not just the first.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import traceback
from pathlib import Path

import atheris

with atheris.instrument_imports(
    include=["channels", "hub", "email", "html", "json", "nh3", "multipart", "python_multipart",
             "starlette", "phonenumbers", "urllib"]
):  # fmt: skip
    from fuzz.targets import TARGETS, Target, run_one

from fuzz.invariants import InvariantError


def signature(error: BaseException) -> str:
    """What makes two failures the same: type, innermost line, the invariant's kind."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    kind = str(error).split(":")[0] if isinstance(error, InvariantError) else ""
    return f"{type(error).__name__} at {where} {kind}".strip()


class Recorder:
    def __init__(self, target: Target, findings: Path) -> None:
        self.target = target
        self.findings = findings
        self.seen: set[str] = set()

    def __call__(self, data: bytes) -> None:
        try:
            run_one(self.target, data)
        except Exception as error:
            self.record(data, error)

    def record(self, data: bytes, error: BaseException) -> None:
        found = signature(error)
        if found in self.seen:
            return
        self.seen.add(found)
        digest = hashlib.sha256(found.encode()).hexdigest()[:10]
        stem = self.findings / f"{self.target.name}-{digest}"
        stem.with_suffix(".bin").write_bytes(data)
        detail = "".join(traceback.format_exception(error))
        stem.with_suffix(".txt").write_text(f"{found}\n\n{detail}")
        print(f"FINDING {self.target.name}: {found}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--findings", type=Path, required=True)
    parser.add_argument("--dict", type=Path, help="a libFuzzer dictionary")
    options = parser.parse_args()
    logging.disable(logging.WARNING)  # the parsers log what they leave out; noise here
    options.findings.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(TARGETS[options.target], options.findings)
    fuzzer_argv = [
        sys.argv[0],
        f"-max_total_time={options.seconds}",
        "-max_len=65536",
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
        *([f"-dict={options.dict}"] if options.dict else []),
        str(options.corpus),
    ]
    atheris.Setup(fuzzer_argv, recorder)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
