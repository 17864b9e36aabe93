"""Does GRPO through verl improve the policy? A task the tiny model can learn on CPU in minutes.

The embedded tiny model was warm-started to answer `<answer>...</answer>`, but about three answers
in four keep writing after the closing tag (`<answer>no finding</answer>no finding</answer>`). The
`format` reward with the single pair `<answer>...</answer>` (strict: nothing before or after) pays
1 only for a clean stop, so the policy must learn to end after `</answer>` - a single decision a
380k-parameter model learns in a few dozen steps at a learning rate suited to its size.

Two runs through `radgrpo` (verl, the hf rollout, FSDP): the learner at `--lr`, and a control at
lr 0 whose reward must stay flat. Prints both reward curves and the ratio of the last 5 steps'
mean to the first 5 steps'; exits 1 when the learner's ratio is under `--target` or the control's
ratio is outside 1 +- `--control-tolerance`. This catches a broken advantage sign, a gradient that
never reaches the weights, or weights that never reach the rollout.

    python benchmarks/learning.py [--steps 30] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASK = [
    "reward=format",
    'reward.terms.0.params.pairs=[["<answer>","</answer>"]]',
]


def train(lr: float, steps: int, outputs: Path) -> tuple[list[float], float]:
    """Per-step mean reward of one run, and its wall time."""
    env = {**os.environ, "RADGRPO_OUTPUTS": str(outputs), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    args = [sys.executable, "-m", "radgrpo.cli.train", *TASK, f"algorithm.lr={lr}",
            f"algorithm.total_training_steps={steps}", f"run_name=learning_lr{lr:g}"]
    started = time.time()
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.time() - started
    if result.returncode != 0:
        sys.exit(f"benchmark run failed (lr={lr}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    (metrics,) = outputs.rglob("metrics.jsonl")
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [r["data"]["critic/score/mean"] for r in rows if "actor/pg_loss" in r["data"]], wall


def ratio(curve: list[float]) -> float:
    first, last = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    return last / first if first else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--target", type=float, default=1.5)
    parser.add_argument("--control-tolerance", type=float, default=0.35)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radgrpo_learning_") as tmp:
        learner, learner_wall = train(args.lr, args.steps, Path(tmp) / "learner")
        control, control_wall = train(0.0, args.steps, Path(tmp) / "control")
    for name, curve, wall in (("learner", learner, learner_wall), ("control", control, control_wall)):
        lr = args.lr if name == "learner" else 0.0
        print(f"{name} (lr {lr:g}, {len(curve)} steps, {wall:.0f} s): " + " ".join(f"{r:.2f}" for r in curve))
        print(f"{name}: last-5 mean / first-5 mean = {ratio(curve):.2f}")
    ok = ratio(learner) >= args.target and abs(ratio(control) - 1) <= args.control_tolerance
    print(f"learning benchmark: {'PASS' if ok else 'FAIL'} (target >= {args.target}x, control within "
          f"1 +- {args.control_tolerance}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
