"""Top costs of a py-spy profile in raw (collapsed-stack) format.

    .venv/bin/python loadtests/bench_profile_top.py loadtests/reports/ingest-profile.txt [-n 25]

`loadtests/benchmark.py --profile FILE` records one with py-spy while the
first ingest repeat runs. Prints the functions with the most samples on
the stack (inclusive) and at the top of the stack (self), as % of all.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def function_of(frame: str) -> str:
    """`f (file.py:12)` -> `f (file.py)`: lines of one function counted together."""
    return _LINE.sub(")", frame)


def load(path: Path, by_line: bool = False) -> tuple[Counter[str], Counter[str], int]:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f if by_line else function_of(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames[1:]):  # the first frame is the thread / process name
            inclusive[frame] += count
    return inclusive, self_time, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profile", type=Path)
    parser.add_argument("-n", type=int, default=25, help="rows per list")
    parser.add_argument("--by-line", action="store_true", help="do not merge a function's lines")
    args = parser.parse_args(argv)
    inclusive, self_time, total = load(args.profile, args.by_line)
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    for title, counter in (("self", self_time), ("inclusive", inclusive)):
        print(f"== {title} ({total} samples) ==")
        for frame, count in counter.most_common(args.n):
            print(f"{100 * count / total:6.1f} %  {frame}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
