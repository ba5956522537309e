"""The GPU-hours of docs/scaling.md's 1,008-run grid, from published throughputs.

    python benchmarks/grid_cost.py

B0-B7 and MobileNetV2 x cats_vs_dogs, cifar10, tf_flowers, oxford_flowers102 x freeze
``frozen``, ``top_blocks``, ``finetune``, ``two_phase`` (5 head epochs) x 7 seeds, 10
epochs each, without and with the feature cache. Nothing is measured here: the inputs are
keras.io's published inference times and the split sizes bench's dataset configs give,
and the assumptions are the constants below. Prints the table docs/scaling.md shows.
"""

from __future__ import annotations

# keras.io/api/applications, "Time (ms) per inference step (GPU)": a batch of 32, A100.
INFERENCE_MS = {"b0": 4.9, "b1": 5.6, "b2": 6.5, "b3": 8.8, "b4": 15.1, "b5": 25.3,
                "b6": 40.4, "b7": 61.6, "mobilenet_v2": 3.8}  # fmt: skip
BATCH = 32
TRAIN_STEP = 3.0  # a step through a trained backbone: forward plus backward, ~3 forwards
START_S = 20.0  # per run: two processes, TensorFlow, W&B, the model, the data, the GPU
EPOCHS, HEAD_EPOCHS, SEEDS = 10, 5, 7
# (train, val, test) images as conf/dataset/*.yaml split the TFDS datasets.
SPLITS = {
    "cats_vs_dogs": (16_284, 3_489, 3_489),  # 70/15/15 of 23,262, carved (largest remainders)
    "cifar10": (45_000, 5_000, 10_000),  # 10% of train carved for validation, test
    "tf_flowers": (2_936, 367, 367),  # 80/10/10 of 3,670, carved
    "oxford_flowers102": (1_020, 1_020, 6_149),  # the official splits
}


def run_seconds(rate: float, freeze: str, split: tuple[int, int, int], cached: bool) -> float:
    """One run: epochs over train (the backbone trained or only run forward) and val, test
    once, start-up. On cached features a frozen epoch costs nothing next to start-up."""
    train, val, test = split
    frozen_epochs = {"frozen": EPOCHS, "two_phase": HEAD_EPOCHS}.get(freeze, 0)
    trained_epochs = EPOCHS - frozen_epochs
    seconds = START_S + trained_epochs * (train * TRAIN_STEP + val) / rate
    if not cached:
        seconds += frozen_epochs * (train + val) / rate
    if not (cached and freeze == "frozen"):
        seconds += test / rate
    return seconds


def backbone_hours(name: str, cached: bool) -> float:
    """Every run of one backbone, plus one cache fill per dataset when cached."""
    rate = BATCH / (INFERENCE_MS[name] / 1000)
    total = 0.0
    for split in SPLITS.values():
        for freeze in ("frozen", "top_blocks", "finetune", "two_phase"):
            total += SEEDS * run_seconds(rate, freeze, split, cached)
        if cached:  # with ImageNet weights one entry serves every seed
            total += sum(split) / rate
    return total / 3600


def main() -> None:
    print("| backbone | inference img/s | training img/s | GPU-hours, no feature cache | with it |")
    print("|---|---|---|---|---|")
    totals = [0.0, 0.0]
    for name, ms in INFERENCE_MS.items():
        hours = [backbone_hours(name, cached) for cached in (False, True)]
        totals = [t + h for t, h in zip(totals, hours, strict=True)]
        rate = BATCH / (ms / 1000)
        cells = [name, f"{rate:,.0f}", f"{rate / TRAIN_STEP:,.0f}", *(f"{h:.1f}" for h in hours)]
        print("| " + " | ".join(cells) + " |")
    runs = len(INFERENCE_MS) * len(SPLITS) * 4 * SEEDS
    print(f"| **all {runs:,} runs** | | | **{totals[0]:.1f}** | **{totals[1]:.1f}** |")
    without, cached = (total / 16 for total in totals)
    print(f"\nOn 16 GPUs: {without:.1f} h without the cache, {cached:.1f} h with it.")


if __name__ == "__main__":
    main()
