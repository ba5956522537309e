"""What ``deterministic=true`` costs: training images/s with TensorFlow's op determinism on
and off, one run beside the other.

``python benchmarks/determinism.py`` trains each backbone (default B0 and MobileNetV2,
fine-tuned from random weights on ``shapes`` at 96 px) with ``deterministic=false`` and
then ``true``, ``--repeats`` times interleaved, each run in its own worker, and prints as
JSON every run's ``train_images_per_s`` (the median training speed of the epochs after
the first) and, per backbone, the ratio true / false of the medians. Any other arguments
are run overrides for every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import bench  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)


def _speed(root: Path, backbone: str, mode: str, repeat: int, overrides: list[str]) -> float:
    from bench.core import record

    runs = root / f"{backbone}-{mode}-{repeat}"
    args = [f"backbone={backbone}", "backbone.weights=none", "freeze=unfrozen", "head=linear",
            "dataset=shapes", "dataset.train_split='train[:640]'", "image_size=96", "epochs=3",
            "wandb.mode=disabled", f"deterministic={mode}", f"results_dir={runs}",
            *overrides]  # fmt: skip
    subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=root, check=True)
    (path,) = runs.glob("*.json")
    found = record.read(path)
    assert found.env.deterministic is (mode == "true"), found.env
    return found.metrics.train_images_per_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="b0,mobilenet_v2")
    parser.add_argument("--repeats", type=int, default=2)
    args, overrides = parser.parse_known_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-determinism-"))
    found: dict[str, dict] = {}
    for backbone in args.backbones.split(","):
        speeds: dict[str, list[float]] = {"false": [], "true": []}
        for repeat in range(args.repeats):
            for mode in ("false", "true"):
                speeds[mode].append(_speed(root, backbone, mode, repeat, overrides))
        medians = {mode: statistics.median(values) for mode, values in speeds.items()}
        found[backbone] = {
            "images_per_s": speeds,
            "ratio_true_over_false": round(medians["true"] / medians["false"], 3),
        }
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
