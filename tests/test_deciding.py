"""Deciding: paired comparisons by seed, Holm over the verdict's family, P(A > B), the seeds
that would settle a pair, ranks across datasets and intervals on the trade-off figure.

Oracles are independent of bench's code: scipy's own ttest_rel and ttest_ind (Welch), and
numbers worked out by hand and written here as literals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from bench.analysis import pairs, plots, ranks, tables, verdict
from bench.core import stats


def _runs(rows: list[tuple], sizes: dict | None = None, dataset: str = "d") -> pd.DataFrame:
    """Hand-made runs: (backbone, seed, accuracy, train time)."""
    frame = pd.DataFrame(rows, columns=["backbone", "seed", "best_val_accuracy", "train_time_s"])
    frame["status"], frame["dataset"], frame["params_total"] = "completed", dataset, 1e6
    frame["image_size"] = frame["backbone"].map(sizes or {}).fillna(224).astype(int)
    return frame


def _comparison(rows, sizes=None) -> tables.Comparison:
    (found,) = tables.comparisons(_runs(rows, sizes)).values()
    return found


def _lines(rows, sizes=None) -> str:
    return " ".join(verdict.verdict(_comparison(rows, sizes)))


# The measurement: test accuracy of `experiment=demo epochs=3` for seeds 1, 2, 3.
B0 = {1: 0.330, 2: 0.400, 3: 0.335}
MOBILENET = {1: 0.393, 2: 0.433, 3: 0.377}


def test_seed_matched_runs_are_compared_on_their_differences():
    paired = stats.compare(MOBILENET, B0)
    oracle = scipy_stats.ttest_rel(list(MOBILENET.values()), list(B0.values()))
    assert paired.test == stats.PAIRED and paired.pairs == 3
    assert paired.interval == pytest.approx(tuple(oracle.confidence_interval()))
    assert paired.p == pytest.approx(oracle.pvalue)
    assert paired.interval == pytest.approx((0.0078, 0.0842), abs=5e-4)  # [+0.8, +8.4] points


def test_runs_that_share_no_seeds_fall_back_to_welch():
    apart = {seed + 3: value for seed, value in B0.items()}  # seeds 4, 5, 6
    found = stats.compare(MOBILENET, apart)
    oracle = scipy_stats.ttest_ind(list(MOBILENET.values()), list(B0.values()), equal_var=False)
    assert found.test == stats.WELCH and found.pairs == 0
    assert found.interval == pytest.approx(tuple(oracle.confidence_interval()))
    assert found.interval == pytest.approx((-0.035, 0.126), abs=1e-3)  # [-3.5, +12.6] points


def test_a_pair_sentence_names_its_test_and_its_pairs():
    rows = [("b0", s, v, 10) for s, v in B0.items()]
    rows += [("mobilenet_v2", s, v, 5) for s, v in MOBILENET.items()]
    lines = _lines(rows)
    # One comparison (the best against b0 is also MobileNetV2 against b0): no adjustment.
    assert "mobilenet_v2 at 224 px beats b0 at 224 px by 4.6 points" in lines
    assert "paired t over 3 seeds both ran: 95% CI of the difference [+0.8, +8.4] points" in lines
    assert "p = 0.035" in lines and "Holm" not in lines.split("beats")[1]
    assert "P(mobilenet_v2 at 224 px > b0 at 224 px) = 1.00 over 3 pairs (95% CI 0.44 to 1.00)" in (
        lines
    )


def _welch_pair(gap: float) -> list[tuple]:
    """Two seeds a side, no seed shared, each side ±0.01 around its mean: Welch's df = 2,
    se = 0.01 * sqrt(2), so the 95% interval of the difference is d ± 4.302653 * 0.014142
    = d ± 0.06085."""
    rows = [("b0", 1, 0.79, 10), ("b0", 2, 0.81, 11)]
    return rows + [("mobilenet_v2", 3, 0.79 + gap, 5), ("mobilenet_v2", 4, 0.81 + gap, 5)]


def test_a_difference_just_inside_welchs_interval_is_a_tie():
    lines = _lines(_welch_pair(0.060))
    assert "mobilenet_v2 at 224 px and b0 at 224 px tie" in lines
    assert (
        "Welch's t on 2 and 2 runs: 95% CI of the difference [-0.1, +12.1] points, includes zero"
        in (lines)
    )
    assert "beats" not in lines


def test_a_difference_just_outside_welchs_interval_is_a_win():
    lines = _lines(_welch_pair(0.062))
    assert "mobilenet_v2 at 224 px beats b0 at 224 px by 6.2 points" in lines
    assert "Welch's t on 2 and 2 runs: 95% CI of the difference [+0.1, +12.3] points" in lines
    assert "MobileNetV2 trains 2.1x as fast" in lines


# Four groups against the best, seeds 1-4 each. scipy's ttest_rel gives the best against
# b1, b0, b2, b3: p = 0.000149, 0.016277, 0.037386, 0.037386. Holm over 4: 4 x 0.000149,
# 3 x 0.016277 = 0.0488, then 2 x 0.037386 = 0.0748 for b2 and b3. b2's and b3's 95%
# intervals exclude zero alone ([+0.1, +2.1] points), yet not one of 4 statements.
HOLM = {
    "mobilenet_v2": [0.80, 0.82, 0.81, 0.83],
    "b1": [0.70, 0.71, 0.72, 0.73],
    "b0": [0.78, 0.81, 0.78, 0.81],
    "b2": [0.79, 0.80, 0.80, 0.825],
    "b3": [0.79, 0.80, 0.80, 0.825],
}


def _holm_rows() -> list[tuple]:
    time = {"mobilenet_v2": 5, "b0": 10, "b1": 12, "b2": 14, "b3": 16}
    return [(b, s, v, time[b]) for b, values in HOLM.items() for s, v in enumerate(values, 1)]


def test_holm_adjusts_the_verdicts_family_and_a_win_must_survive_it():
    found = pairs.distinct(pairs.family(_comparison(_holm_rows()), "best_val_accuracy"))
    adjusted = {p.label_b.split(" ")[0]: p.difference for p in found}
    assert {name: d.family for name, d in adjusted.items()} == dict.fromkeys(adjusted, 4)
    assert adjusted["b1"].p_adjusted == pytest.approx(4 * 0.000149157, rel=1e-4)
    assert adjusted["b0"].p_adjusted == pytest.approx(3 * 0.016276603, rel=1e-6)
    assert adjusted["b2"].p_adjusted == pytest.approx(2 * 0.037386073, rel=1e-6)
    assert adjusted["b3"].p_adjusted == pytest.approx(2 * 0.037386073, rel=1e-6)
    assert adjusted["b2"].interval[0] > 0  # resolved alone...
    assert [n for n, d in adjusted.items() if d.significant] == ["b0", "b1"]  # ...not together
    lines = _lines(_holm_rows())
    assert "Worse than it (Holm-adjusted over 4 comparisons): b0 / 224 by 2.0 points, b1 / 224" in (
        lines
    )
    assert "Not distinguishable from it (Holm-adjusted over 4 comparisons" in lines
    assert "mobilenet_v2 at 224 px and b2 at 224 px tie" in lines
    assert "Holm-adjusted p = 0.075 over 4 comparisons" in lines


def test_a_race_pools_the_seed_noise_of_every_candidate_as_a_block_design():
    # Five groups, three seeds; the oracle is an ordinary least-squares fit of the additive
    # model (a column per group and per seed) and the variance of its contrast.
    x = np.array([[0.46, 0.50, 0.44], [0.40, 0.47, 0.41], [0.30, 0.36, 0.33],
                  [0.28, 0.31, 0.27], [0.45, 0.47, 0.46]])  # fmt: skip
    k, n = x.shape
    design = np.array([[float(i == g) for g in range(k)] + [float(j == s) for s in range(1, n)]
                       for i in range(k) for j in range(n)])  # fmt: skip
    coef, residual, *_ = np.linalg.lstsq(design, x.ravel(), rcond=None)
    df = k * n - design.shape[1]
    assert df == 8
    sigma2 = float(residual[0]) / df
    cov = sigma2 * np.linalg.inv(design.T @ design)
    found = stats.against([dict(zip((1, 2, 3), row, strict=True)) for row in x], best=0)
    for i, d in enumerate(found, start=1):
        contrast = np.zeros(design.shape[1])
        contrast[0], contrast[i] = 1.0, -1.0
        se = float(np.sqrt(contrast @ cov @ contrast))
        assert d.value == pytest.approx(coef[0] - coef[i])
        assert d.p == pytest.approx(2 * scipy_stats.t.sf(abs(coef[0] - coef[i]) / se, df))
        half = scipy_stats.t.ppf(0.975, df) * se
        assert d.interval == pytest.approx((coef[0] - coef[i] - half, coef[0] - coef[i] + half))
        assert d.test == "block t" and d.pairs == 3
    # Its own paired t, with 2 degrees of freedom, does not resolve group 1 at 3 seeds.
    assert scipy_stats.ttest_rel(x[0], x[3]).pvalue > found[2].p
    two = stats.against([{1: 0.5, 2: 0.6}, {1: 0.4, 2: 0.45}], best=0)  # two groups: paired
    assert two[0].test == "paired t"


def test_probability_of_improvement_counts_ties_half_with_wilsons_interval():
    found = stats.probability_of_improvement({1: 1.0, 2: 0.5, 3: 0.2, 4: 0.7},
                                             {1: 0.9, 2: 0.5, 3: 0.3, 4: 0.6})  # fmt: skip
    assert (found.probability, found.pairs) == (0.625, 4)  # two wins, a tie, a loss
    three_of_four = stats.probability_of_improvement({1: 1, 2: 1, 3: 1, 4: 0},
                                                     {1: 0, 2: 0, 3: 0, 4: 1})  # fmt: skip
    oracle = scipy_stats.binomtest(3, 4).proportion_ci(confidence_level=0.95, method="wilson")
    assert three_of_four.interval == pytest.approx((oracle.low, oracle.high))
    assert stats.probability_of_improvement({1: 1.0}, {2: 0.5}) is None  # no shared seed


def test_an_open_pair_says_how_many_seeds_would_settle_it():
    found = stats.compare({1: 0.80, 2: 0.83, 3: 0.81}, {1: 0.79, 2: 0.80, 3: 0.80})
    assert not found.significant
    # A 1.67-point mean difference at a spread of 1.155 points: 80% power at the 5% level
    # needs 6 pairs (checked by simulation: 40,000 draws of 5 pairs reject 68% of the time,
    # of 6 pairs 80.2%).
    assert stats.seeds_needed(found) == 6
    tiny = stats.compare({1: 0.800, 2: 0.830, 3: 0.810}, {1: 0.801, 2: 0.828, 3: 0.812})
    assert stats.seeds_needed(tiny) is None  # beyond 50 seeds: practically a tie
    rows = [("b0", s, v, 10) for s, v in {1: 0.79, 2: 0.80, 3: 0.80}.items()]
    rows += [("mobilenet_v2", s, v, 5) for s, v in {1: 0.80, 2: 0.83, 3: 0.81}.items()]
    assert "about 6 seeds each would settle this if the difference holds" in _lines(rows)


def test_five_pairs_also_get_a_bootstrap_interval():
    a = {s: 0.80 + 0.01 * s for s in range(1, 6)}
    b = {s: 0.78 + 0.012 * s - 0.004 * (s % 2) for s in range(1, 6)}
    found = stats.compare(a, b)
    differences = np.array([a[s] - b[s] for s in a])
    oracle = scipy_stats.bootstrap((differences,), np.mean, n_resamples=4999,
                                   random_state=np.random.default_rng(0))  # fmt: skip
    assert found.bootstrap == pytest.approx(tuple(oracle.confidence_interval))
    assert stats.compare({1: 0.5, 2: 0.6, 3: 0.7, 4: 0.8}, b).bootstrap is None  # 4 pairs


def test_a_single_seed_side_is_not_tested():
    rows = [("b0", 1, 0.90, 10), ("b0", 2, 0.80, 10), ("b0", 3, 0.85, 10),
            ("mobilenet_v2", 1, 0.86, 5)]  # fmt: skip
    lines = _lines(rows)
    assert "mobilenet_v2 at 224 px vs b0 at 224 px: single seed, not tested" in lines
    assert "beats" not in lines and "tie" not in lines
    assert "seed=1,2,3" in lines


def test_the_verdict_compares_mobilenet_v2_with_every_efficientnet_at_native_sizes():
    native = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "mobilenet_v2": 224}
    rows = [
        (b, s, 0.80 + 0.01 * i + 0.001 * s, 10 + i) for i, b in enumerate(native) for s in (1, 2)
    ]
    found = verdict.verdict(_comparison(rows, native))
    lines = [line for line in found if "MobileNetV2 trains" in line]
    for backbone in ("b0", "b1", "b2", "b3"):
        assert sum(f"{backbone} at {native[backbone]} px" in line for line in lines) == 1
    assert all("mobilenet_v2 at 224 px" in line for line in lines) and len(lines) == 4


def test_a_non_native_size_is_only_compared_at_the_same_size():
    sizes = {"b1": 224, "mobilenet_v2": 160}  # neither matches the other nor is native for b1
    rows = [("b1", 1, 0.8, 10), ("b1", 2, 0.81, 10), ("mobilenet_v2", 1, 0.7, 5),
            ("mobilenet_v2", 2, 0.71, 5)]  # fmt: skip
    assert not [line for line in verdict.verdict(_comparison(rows, sizes)) if "MobileNetV2" in line]


def _datasets(scores: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = []
    for dataset, by_backbone in scores.items():
        for backbone, score in by_backbone.items():
            for seed in (1, 2):
                rows.append((backbone, seed, score + 0.001 * seed, 10, dataset))
    frame = pd.DataFrame(rows, columns=["backbone", "seed", "best_val_accuracy",
                                        "train_time_s", "dataset"])  # fmt: skip
    frame["status"], frame["params_total"], frame["image_size"] = "completed", 1e6, 224
    return frame


def test_ranks_across_datasets_with_friedman_and_nemenyi():
    # Six datasets; mobilenet_v2 first on each, b1 second on five, b0 last on five.
    order = [("mobilenet_v2", "b1", "b0")] * 5 + [("mobilenet_v2", "b0", "b1")]
    scores = {f"d{i}": {name: 0.9 - 0.1 * place for place, name in enumerate(names)}
              for i, names in enumerate(order)}  # fmt: skip
    found = ranks.rank(tables.comparisons(_datasets(scores)))
    means = found.mean_ranks
    assert list(means.index) == ["mobilenet_v2", "b1", "b0"]
    assert means.tolist() == pytest.approx([1.0, 13 / 6, 17 / 6])
    oracle = scipy_stats.friedmanchisquare([0.9] * 6, [0.8] * 5 + [0.7], [0.7] * 5 + [0.8])
    assert (found.test, found.p) == ("Friedman", pytest.approx(oracle.pvalue))
    # Nemenyi: q(0.05, 3 groups) = 3.314 / sqrt(2) = 2.343; CD = 2.343 * sqrt(3*4 / (6*6)).
    assert found.cd == pytest.approx(1.3529, abs=1e-3)
    assert found.separated == [("mobilenet_v2", "b0")]  # 1.83 ranks apart; b1 only 1.17
    assert "the data separates mobilenet_v2 from b0" in found.sentence()


def test_one_dataset_gets_no_ranking_and_the_report_says_why(tmp_path):
    from bench.analysis import report

    one = tables.comparisons(_datasets({"d": {"b0": 0.8, "mobilenet_v2": 0.9}}))
    assert ranks.rank(one) is None
    assert report.across(one, tmp_path).sentence == (
        "No ranking across datasets: these runs cover one dataset (d), and ranks need two or more."
    )
    scores = {"a": {"b0": 0.8, "b1": 0.7, "mobilenet_v2": 0.9},
              "b": {"b0": 0.7, "b1": 0.8, "mobilenet_v2": 0.9}}  # fmt: skip
    two = tables.comparisons(_datasets(scores))
    found = report.across(two, tmp_path)
    assert found.sentence.startswith("Across 2 datasets (a, b), mean ranks (1 = best):")
    assert found.figure.is_file() and found.figure.name == "critical_difference.png"
    assert list(found.table["group"]) == ["mobilenet_v2", "b0", "b1"]


def test_a_point_whose_interval_reaches_the_front_is_not_separable_from_it():
    cost = pd.Series({"a": 1.0, "b": 2.0, "c": 3.0})
    accuracy = pd.Series({"a": 0.80, "b": 0.90, "c": 0.85})  # c is off the front (b beats it)
    low, high = accuracy - 0.02, accuracy + 0.02
    assert plots.pareto(cost, accuracy) == ["a", "b"]
    assert plots.inseparable(cost, accuracy, low, high) == []  # 0.87 < 0.88
    assert plots.inseparable(cost, accuracy, low, high + 0.02) == ["c"]  # 0.89 >= 0.88
