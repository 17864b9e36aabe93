"""`radgrpo-report`: CSV, seed statistics and plots of a sweep (or any list of runs).

    radgrpo-report outputs/multirun/2026-12-01/04-40-00            # report in <folder>/report
    radgrpo-report run_a run_b runs.txt --out my_report            # run folders, multirun folders, lists
    radgrpo-report <folder> --metric val-core/synthetic_grounding/reward/mean@1 --no-wandb

Works on a sweep that is still running: unfinished runs are listed, statistics use the finished ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "radgrpo-report"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path,
                        help="multirun folders, run folders, or text files listing them (one per line)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: <folder>/report when one folder is given)")
    parser.add_argument("--metric", default=None, help="headline metric (default: critic/score/mean)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    wandb = parser.add_mutually_exclusive_group()
    wandb.add_argument("--wandb", dest="wandb", action="store_true", default=None,
                       help="log to wandb even if the runs did not")
    wandb.add_argument("--no-wandb", dest="wandb", action="store_false", help="never log to wandb")
    return parser.parse_args(argv)


def _fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """The console script (`sys.exit(main())`: it returns None, so the exit status is 0 on success)."""
    run_report(argv)


def run_report(argv: list[str] | None = None) -> dict:
    """Parse `argv`, build the report, print its summary; returns the report."""
    from radgrpo.report import DEFAULT_METRIC, build_report

    args = parse_args(sys.argv[1:] if argv is None else argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        _fail(f"no such run or multirun folder: {missing[0]}")
    out = args.out
    if out is None:
        if len(args.paths) != 1 or not args.paths[0].is_dir():
            _fail("give --out when reporting more than one folder or a run list")
        out = args.paths[0] / "report"
    try:
        report = build_report(args.paths, out, metric=args.metric or DEFAULT_METRIC, wandb=args.wandb,
                              resamples=args.resamples, seed=args.seed)
    except FileNotFoundError as exc:
        _fail(str(exc))
    done = sum(status == "completed" for status in report["status"].values())
    print(f"{PROG}: {done} of {report['runs']} runs completed")
    for run in report["not_completed"]:
        print(f"{PROG}:   {run['status'].upper()}: {run['run']}" + (f" ({run['error']})" if run["error"] else ""))
    print(report["markdown"])
    print(f"{PROG}: wrote {', '.join(report['files'].values())}")
    if "wandb" in report:
        print(f"{PROG}: logged to wandb project {report['wandb']['project']} group {report['wandb']['group']} "
              f"({report['wandb']['mode']})")
    return report


if __name__ == "__main__":
    main()
