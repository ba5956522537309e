"""How far a tuned candidate's reported test accuracy sits above the truth, by simulation.

``python benchmarks/selection.py`` simulates studies whose configurations are all equal in
truth (accuracy 0.5): one candidate, ``--configs`` configurations, ``--seeds`` seeds each.
A run's luck (its initial weights, its order; ``--run-sd`` points) moves its validation and
its test accuracy alike; each split adds its own noise (``--split-sd`` points, about the
binomial error of 400 images at 0.5). The defaults give the demo's seed spread, about 5.6
points. Every study goes through bench's own code (bench.analysis.tables, .select), and
three rules are read off it:

- ``select on test``: the configuration with the best mean test accuracy, reported on test
  (what bench did before: its verdict's best group and its race chose on test);
- ``select on validation, same runs``: the best mean validation accuracy, reported as the
  test accuracy of those same runs (the lucky runs stay lucky on test);
- ``bench (cross-fitted)``: each seed's score is the test accuracy of the configuration the
  other seeds' validation chose (bench.core.choose), as the verdict reports it.

It prints each rule's bias (reported minus truth, in points) with its 95% Monte Carlo
interval. The truth is 0.5 for every configuration, so an honest rule's bias is zero.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd

from bench.analysis import select, tables

TRUTH = 0.5


def study(rng: np.random.Generator, configs: int, seeds: int, run_sd: float, split_sd: float):
    """One simulated study as the runs frame bench reads."""
    luck = rng.normal(0, run_sd, (configs, seeds))
    val = TRUTH + luck + rng.normal(0, split_sd, luck.shape)
    test = TRUTH + luck + rng.normal(0, split_sd, luck.shape)
    rows = [
        {"backbone": "b0", "lr": 10.0 ** -(1 + c / 4), "seed": s + 1,
         "final_val_accuracy": val[c, s], "test_accuracy": test[c, s]}
        for c in range(configs) for s in range(seeds)
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["status"], frame["dataset"], frame["image_size"], frame["train_time_s"] = (
        "completed", "d", 32, 1.0,
    )  # fmt: skip
    return frame


def reported(frame: pd.DataFrame) -> dict[str, float]:
    """What each rule reports for one study."""
    (comparison,) = tables.comparisons(frame).values()
    found = select.study(comparison, ["backbone"])
    chosen = found.choice("b0").chosen
    on_test = frame.assign(final_val_accuracy=frame["test_accuracy"])
    (cheat,) = tables.comparisons(on_test).values()
    by_test = select.study(cheat, ["backbone"]).choice("b0").chosen
    return {
        "select on test": float(np.mean(list(by_test.test.values()))),
        "select on validation, same runs": float(np.mean(list(chosen.test.values()))),
        "bench (cross-fitted)": float(np.mean(list(found.scores("b0").values()))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--run-sd", type=float, default=5.0, help="points")
    parser.add_argument("--split-sd", type=float, default=2.5, help="points")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    found: dict[str, list[float]] = {}
    for _ in range(args.studies):
        frame = study(rng, args.configs, args.seeds, args.run_sd / 100, args.split_sd / 100)
        for rule, value in reported(frame).items():
            found.setdefault(rule, []).append((value - TRUTH) * 100)
    out = {"settings": vars(args), "bias_points": {}}
    for rule, values in found.items():
        mean = float(np.mean(values))
        half = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
        low, high = round(mean - half, 3), round(mean + half, 3)
        out["bias_points"][rule] = {"mean": round(mean, 3), "ci95": [low, high]}
        print(f"{rule:34s} bias {mean:+.2f} points (95% CI {low:+.2f} to {high:+.2f})")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
