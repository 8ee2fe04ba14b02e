"""``python -m bench [--seconds N] [--quick]``: see docs/performance.md."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from rich.console import Console

from bench.runner import RESULTS_DIR, TARGET_HISTORY_POSTINGS, Options, run

DEFAULT_SECONDS = 10
DEFAULT_WARMUP = 2.0
QUICK_SECONDS = 3
QUICK_WARMUP = 1.0
QUICK_HISTORY_POSTINGS = 1_000_000


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Coinbooks benchmark: pgbench TPC-B baseline, purchases/s through the "
        "accounting core and through GraphQL over HTTP, gifts/s through the accounting core "
        "(uniform over creators at 1, 8, 32 and 128 senders, and all to one creator) and "
        "through GraphQL over HTTP, storage per gift, wallet reads over HTTP as the history "
        "grows, with the books checked after each phase. Uses DATABASE_URL's server if set, "
        "else an embedded PostgreSQL.",
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=None,
        help="measured seconds per phase (default 10; 3 with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="unmeasured warm-up seconds before each ledger phase (default 2; 1 with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a short smoke run ({QUICK_SECONDS} s per phase)"
    )
    parser.add_argument(
        "--history-postings",
        type=int,
        default=None,
        help=f"postings to grow the wallet-read history to (default {TARGET_HISTORY_POSTINGS:,}; "
        f"{QUICK_HISTORY_POSTINGS:,} with --quick; 0 leaves the phase out)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="where to write the JSON (default bench/results/latest.json)",
    )
    args = parser.parse_args(argv)
    seconds, warmup = (
        (QUICK_SECONDS, QUICK_WARMUP) if args.quick else (DEFAULT_SECONDS, DEFAULT_WARMUP)
    )
    if args.seconds is not None:
        seconds = args.seconds
    if args.warmup is not None:
        warmup = args.warmup
    history_postings = QUICK_HISTORY_POSTINGS if args.quick else TARGET_HISTORY_POSTINGS
    if args.history_postings is not None:
        history_postings = args.history_postings
    if seconds < 1:
        parser.error("--seconds must be at least 1")
    if warmup < 0:
        parser.error("--warmup cannot be negative")
    if history_postings < 0:
        parser.error("--history-postings cannot be negative")
    return Options(
        seconds=seconds,
        warmup=warmup,
        quick=args.quick,
        output=args.output.resolve(),
        history_postings=history_postings,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # Wide enough for the table when the output goes to a file or a pipe.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    return run(options, console)


if __name__ == "__main__":
    sys.exit(main())
