"""`python -m projections.rollup_sql [--check] [--directory DIR]`: write or check
the generated rollup migrations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from projections.rollup_sql import RollupSchemaError, stale_files, write_missing
from vpsmon.storage.migrations import migrations_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m projections.rollup_sql", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a registered file is missing or differs",
    )
    parser.add_argument("--directory", type=Path, default=None, help="default: db/migrations")
    args = parser.parse_args(argv)
    directory: Path = args.directory or migrations_dir()
    if args.check:
        stale = stale_files(directory)
        for name in stale:
            print(f"{name}: missing or not what the generator renders", file=sys.stderr)
        return 1 if stale else 0
    try:
        written = write_missing(directory)
    except RollupSchemaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name in written:
        print(f"wrote {directory / name}")
    if not written:
        print("every generated migration is already written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
