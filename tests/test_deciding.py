"""Deciding: paired comparisons by seed, every pair of candidates in one family (Bergmann and
Hommel's closed test), equivalence by two one-sided tests, P(A > B), the seeds that would
tell the margin apart, and ranks across datasets with Iman and Davenport's F.

Oracles are independent of bench's code: scipy's ttest_rel and ttest_ind (Welch),
statsmodels' Holm and TOST, Shaffer's counts and Bergmann and Hommel's exhaustive sets from
every set partition of the means,
Demšar's (2006) worked example, and numbers worked out by hand and written here as
literals.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from bench.analysis import pairs, plots, ranks, select, tables, verdict
from bench.core import stats


def _runs(rows: list[tuple], dataset: str = "d", test: bool = True) -> pd.DataFrame:
    """Hand-made runs: (backbone, seed, accuracy, train time); validation and test alike
    unless a test says otherwise."""
    frame = pd.DataFrame(rows, columns=["backbone", "seed", "test_accuracy", "train_time_s"])
    frame["final_val_accuracy"] = frame["test_accuracy"]
    if not test:
        frame = frame.drop(columns="test_accuracy")
    frame["status"], frame["dataset"], frame["params_total"] = "completed", dataset, 1e6
    frame["image_size"] = 224
    return frame


def _study(rows, **kwargs) -> select.Study:
    (found,) = tables.comparisons(_runs(rows, **kwargs)).values()
    return select.study(found, ["backbone"])


def _decide(rows, **kwargs) -> verdict.Verdict:
    return verdict.decide(_study(rows), **kwargs)


def _table_row(found: verdict.Verdict, candidate: str) -> dict:
    return found.table.set_index("candidate").loc[candidate].to_dict()


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


def test_the_stated_difference_is_the_tested_one_over_the_seeds_both_ran():
    a = {1: 0.80, 2: 0.82, 3: 0.81, 4: 0.99}  # seed 4: b has no run to pair it with
    b = {1: 0.78, 2: 0.79, 3: 0.80}
    found = stats.compare(a, b)
    assert (found.a, found.b, found.n_a, found.n_b) == pytest.approx((0.81, 0.79, 3, 3))
    assert found.value == pytest.approx(found.a - found.b)


# Five candidates, seeds 1-4 each: every pair is tested and adjusted together.
HOLM = {
    "mobilenet_v2": [0.80, 0.82, 0.81, 0.83],
    "b1": [0.70, 0.71, 0.72, 0.73],
    "b0": [0.78, 0.81, 0.78, 0.81],
    "b2": [0.79, 0.80, 0.80, 0.825],
    "b3": [0.79, 0.80, 0.80, 0.826],
}


def _holm_rows() -> list[tuple]:
    time = {"mobilenet_v2": 5, "b0": 10, "b1": 12, "b2": 14, "b3": 16}
    return [(b, s, v, time[b]) for b, values in HOLM.items() for s, v in enumerate(values, 1)]


def _block_p(rows: dict[str, list[float]], a: str, b: str) -> float:
    """The block t of ``a`` against ``b``, computed here: the residuals of an ordinary
    least-squares fit of the additive model (a column per candidate and per seed), each
    candidate's own residual variance, Satterthwaite's degrees of freedom."""
    names = list(rows)
    x = np.array([rows[name] for name in names])
    k, n = x.shape
    design = np.array([[float(i == g) for g in range(k)] + [float(j == s) for s in range(1, n)]
                       for i in range(k) for j in range(n)])  # fmt: skip
    coef, *_ = np.linalg.lstsq(design, x.ravel(), rcond=None)
    residual = (x.ravel() - design @ coef).reshape(k, n)
    v = (residual**2).sum(axis=1) * k / ((n - 1) * (k - 1))
    i, j = names.index(a), names.index(b)
    total = v[i] + v[j]
    alike = (n - 1) * (2 - 2 / k) ** 2 / (1 + (1 - 2 / k) ** 2)
    df = alike * total**2 / (2 * (v[i] ** 2 + v[j] ** 2))
    t = (x[i].mean() - x[j].mean()) / np.sqrt(total / n)
    return float(2 * scipy_stats.t.sf(abs(t), df))


def _shaffer_p(raw: list[float], k: int) -> list[float]:
    """Shaffer's (1986) step-down adjusted p-values, written out here: the i-th smallest
    p-value times the most hypotheses that can be true once i - 1 are rejected (counted
    from every set partition of the k means), a running maximum capped at 1."""
    counts = {sum(len(g) * (len(g) - 1) // 2 for g in p) for p in _set_partitions(list(range(k)))}
    m, out, running = k * (k - 1) // 2, [0.0] * len(raw), 0.0
    for rank, i in enumerate(np.argsort(raw)):
        running = max(running, min(1.0, max(c for c in counts if c <= m - rank) * raw[i]))
        out[i] = running
    return out


def _bergmann_hommel_p(raw: list[float], k: int) -> list[float]:
    """Bergmann and Hommel's (1988) adjusted p-values, written out here from their
    definition: over every set partition of the k means (the equal ones grouped), the
    hypotheses inside its groups are one exhaustive set I, rejected when
    |I| min_{h in I} p_h <= alpha; a pair's adjusted p-value is the largest such product
    over the sets that hold it (García and Herrera 2008, section 3)."""
    index = list(itertools.combinations(range(k), 2))
    out = [0.0] * len(raw)
    for partition in _set_partitions(list(range(k))):
        inside = [index.index(pair) for g in partition for pair in itertools.combinations(g, 2)]
        if inside:
            product = min(1.0, len(inside) * min(raw[h] for h in inside))
            for h in inside:
                out[h] = max(out[h], product)
    return out


def test_every_pair_is_one_family_because_the_best_is_chosen_from_the_data():
    found = pairs.family(_study(_holm_rows()))
    names = sorted(HOLM)  # the study's candidates, in the comparison table's order
    assert [(p.a, p.b) for p in found] == list(itertools.combinations(names, 2))
    rows = {name: HOLM[name] for name in names}
    raw = [_block_p(rows, a, b) for a, b in itertools.combinations(names, 2)]
    adjusted = [p.difference.p_adjusted for p in found]
    assert adjusted == pytest.approx(_bergmann_hommel_p(raw, len(names)))
    shaffer = _shaffer_p(raw, len(names))
    holm = multipletests(raw, method="holm")[1]
    assert min(adjusted) == pytest.approx(min(holm))  # the first step is Holm's...
    assert all(a <= s + 1e-12 <= h + 2e-12 for a, s, h in zip(adjusted, shaffer, holm, strict=True))
    assert any(a < s - 1e-6 for a, s in zip(adjusted, shaffer, strict=True))  # ...then less
    assert {p.difference.family for p in found} == {10}
    assert {p.difference.test for p in found} == {stats.BLOCKS}
    assert {p.difference.adjusted_by for p in found} == {stats.BERGMANN_HOMMEL}


def test_a_candidate_with_a_single_run_is_in_no_claim_and_not_in_the_family():
    # b3 ran one seed: its pairs are not tested, so the family is the 3 pairs of the other
    # three candidates, whose exhaustive sets are the three pairs alone and all three.
    rows = [r for r in _holm_rows() if r[0] != "b2" and (r[0] != "b3" or r[1] == 1)]
    found = pairs.family(_study(rows))
    tested = [p for p in found if p.difference.tested]
    assert {x for p in tested for x in (p.a, p.b)} == {"mobilenet_v2", "b0", "b1"}
    names = ["b0", "b1", "mobilenet_v2"]
    # b3's single run has a leverage of 1: the layout is the other three's, balanced
    raw = [_block_p({n: HOLM[n] for n in names}, p.a, p.b) for p in tested]
    assert [p.difference.p_adjusted for p in tested] == pytest.approx(_bergmann_hommel_p(raw, 3))
    assert {p.difference.family for p in tested} == {3}


def test_the_block_ts_degrees_of_freedom_match_its_variance_by_simulation():
    """Under alike noise, v_i + v_j is a scaled chi-square whose degrees of freedom,
    2 E^2 / Var, are the ones bench claims: here from 20,000 simulated layouts."""
    rng = np.random.default_rng(0)
    k, n = 5, 4
    x = rng.standard_normal((20_000, k, n))
    residual = x - x.mean(axis=2, keepdims=True) - x.mean(axis=1, keepdims=True)
    residual += x.mean(axis=(1, 2), keepdims=True)
    v = (residual**2).sum(axis=2) * k / ((n - 1) * (k - 1))
    total = v[:, 0] + v[:, 1]
    assert total.mean() == pytest.approx(2.0, rel=0.02)  # unbiased for sigma_i^2 + sigma_j^2
    simulated = 2 * total.mean() ** 2 / total.var()
    claimed = (n - 1) * (2 - 2 / k) ** 2 / (1 + (1 - 2 / k) ** 2)
    assert simulated == pytest.approx(claimed, rel=0.05)


def _ols_cells(cells: list[tuple[int, int, float]], groups: int):
    """An ordinary least-squares fit of value = group + seed over (group, seed, value)
    cells, unbalanced, with numpy alone: the design, coefficients and residuals."""
    seeds = sorted({s for _, s, _ in cells})
    design = np.array([[float(g == i) for i in range(groups)] + [float(s == t) for t in seeds[1:]]
                       for g, s, _ in cells])  # fmt: skip
    y = np.array([v for *_, v in cells])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return design, coef, y - design @ coef


def test_a_group_that_stopped_early_lends_its_seeds_to_the_pooled_block_t():
    """Two of five groups stopped at 4 and 6 seeds (a race's dropped entrants); the pooled
    block t of two full groups is the least-squares contrast over every cell, computed
    here with numpy, on N - rank degrees of freedom."""
    rng = np.random.default_rng(3)
    stops = (10, 10, 10, 4, 6)
    groups = [{s: float(rng.normal(0.5 + 0.01 * g, 0.02)) for s in range(1, n + 1)}
              for g, n in enumerate(stops)]  # fmt: skip
    cells = [(g, s, v) for g, group in enumerate(groups) for s, v in group.items()]
    design, coef, residual = _ols_cells(cells, len(groups))
    df = len(cells) - np.linalg.matrix_rank(design)
    cov = float(residual @ residual) / df * np.linalg.pinv(design.T @ design)
    contrast = np.zeros(design.shape[1])
    contrast[0], contrast[1] = 1.0, -1.0
    t = (coef[0] - coef[1]) / np.sqrt(contrast @ cov @ contrast)
    (found,) = stats.blocks(groups, [(0, 1)], pooled=True)
    # 40 cells, 14 parameters; the layout of the 4 seeds every group ran would give 12
    assert found.df == df == 40 - 14
    assert found.p == pytest.approx(float(2 * scipy_stats.t.sf(abs(t), df)))


def test_the_block_t_holds_its_level_when_groups_stopped_early():
    """Each group's own noise, from a layout whose groups stopped at different seeds and
    whose seeds share luck: under no difference the two full groups' p-values are uniform
    (rejections at 5% and 1% within the binomial's 99.9% range of 6,000 layouts), on more
    degrees of freedom than the pair's own paired t (9)."""
    rng = np.random.default_rng(11)
    stops, layouts = (10, 10, 7, 8, 9), 6000
    ps, dfs = [], []
    for _ in range(layouts):
        luck = rng.normal(0, 1.0, 10)  # the seed's shared luck, which blocks take out
        groups = [{s: float(luck[s - 1] + rng.normal()) for s in range(1, n + 1)}
                  for n in stops]  # fmt: skip
        (found,) = stats.blocks(groups, [(0, 1)])
        ps.append(found.p)
        dfs.append(found.df)
    for level in (0.05, 0.01):
        low, high = scipy_stats.binom.ppf([0.0005, 0.9995], layouts, level) / layouts
        assert low <= np.mean(np.array(ps) < level) <= high
    assert np.median(dfs) > 12


def _set_partitions(items: list[int]):
    """Every way to split ``items`` into groups (the first item joins each group of a
    partition of the rest, or a group of its own)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _set_partitions(rest):
        for i in range(len(partition)):
            yield partition[:i] + [[first, *partition[i]]] + partition[i + 1 :]
        yield [[first], *partition]


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_the_exhaustive_sets_are_the_pairs_inside_the_groups_of_every_set_partition(k):
    index = list(itertools.combinations(range(k), 2))
    expected = set()
    for partition in _set_partitions(list(range(k))):
        inside = {index.index(pair) for g in partition for pair in itertools.combinations(g, 2)}
        if inside:
            expected.add(frozenset(inside))
    found = [frozenset(np.flatnonzero(row)) for row in stats.exhaustive(k)]
    assert len(found) == len(expected) and set(found) == expected


def test_the_verdicts_closed_test_frees_more_than_shaffers_count_where_its_sets_allow():
    """Five means; a is far ahead of b and c, a little ahead of d and e (p = 0.011 each,
    between 5%/6 and 5%/4). Shaffer's count holds d and e to 5%/6 after the first
    rejection. Every exhaustive set holding a = d either holds a = b or a = c (rejected at
    5%/10 or less), or has at most four pairs ({a, d} with {b, c, e}), so the closed test
    rejects a = d at 5%/4; a = e the same."""
    raw = {(0, 1): 1e-4, (0, 2): 2e-4, (0, 3): 0.011, (0, 4): 0.011}
    index = list(itertools.combinations(range(5), 2))
    ps = [raw.get(pair, 0.5) for pair in index]
    found = [stats.Difference(0.0, 0.0, 4, 4, test=stats.PAIRED, p=p) for p in ps]
    adjusted = [d.p_adjusted for d in stats.bergmann_hommel(found, index)]
    assert adjusted == pytest.approx(_bergmann_hommel_p(ps, 5))
    assert adjusted[index.index((0, 3))] == pytest.approx(4 * 0.011)
    assert _shaffer_p(ps, 5)[index.index((0, 3))] == pytest.approx(6 * 0.011)


def _race_closure(ps: list[float], k: int, before: frozenset = frozenset()) -> tuple[set, dict]:
    """The race's closed test at one look, written out here: over every set partition of
    the k means, the pairs inside its groups are one set, rejected when it holds a pair
    rejected at an earlier look (``before``) or a pair's p-value is at most
    5% / (groups of two or more) / (pairs in its group). A pair is rejected when every set
    holding it is; a pair rejected now was held to the largest divisor among the sets that
    only it rejects."""
    index = list(itertools.combinations(range(k), 2))
    sets = []
    for partition in _set_partitions(list(range(k))):
        groups = [g for g in partition if len(g) > 1]
        split = {index.index(pair): len(groups) * len(g) * (len(g) - 1) // 2
                 for g in groups for pair in itertools.combinations(g, 2)}  # fmt: skip
        if split:
            sets.append(split)
    crossing = [{h for h, d in split.items() if ps[h] <= 0.05 / d} for split in sets]
    earlier = [bool(before & split.keys()) for split in sets]
    standing = [not (c or e) for c, e in zip(crossing, earlier, strict=True)]
    rejected = {h for h in range(len(index))
                if not any(standing[n] for n, split in enumerate(sets) if h in split)}  # fmt: skip
    held = {h: max(split[h] for n, split in enumerate(sets)
                   if h in split and not earlier[n] and crossing[n] <= {h})
            for h in rejected - before}  # fmt: skip
    return rejected, held


def _closed_step_at_one_look(
    ps: list[float], k: int, before: frozenset = frozenset()
) -> tuple[set, dict]:  # fmt: skip
    def crosses(divisor: int) -> np.ndarray:
        return np.array([p <= 0.05 / divisor for p in ps])

    earlier = np.isin(np.arange(len(ps)), list(before))
    now, held = stats.closed_step(k, crosses, earlier)
    found = set(np.flatnonzero(now))
    return found, {h: int(held[h]) for h in found - before}


@pytest.mark.parametrize("k", [3, 4, 5, 6, 7, 8])
def test_the_races_closed_test_is_its_closure_written_out(k):
    """Random p-values, with and without pairs rejected at an earlier look; eight means
    (4,139 sets) reach divisors above the number of pairs (a group of six beside a pair: 30
    of 28)."""
    rng = np.random.default_rng(k)
    pairs = k * (k - 1) // 2
    for trial in range(12 if k == 8 else 40):
        ps = list(10 ** rng.uniform(-4, 0, pairs))
        before = frozenset(rng.choice(pairs, size=trial % 3, replace=False).tolist())
        assert _closed_step_at_one_look(ps, k, before) == _race_closure(ps, k, before)


def test_the_races_closed_test_splits_a_sets_level_among_its_groups():
    """Five means. The leader a far ahead of b, c and d, and 0.02 ahead of e: every set
    holding a = e and none of the rejected pairs is {a, e} beside groups of b, c, d (two
    groups of two or more at most), so a = e is held to 5%/2 and rejected; Bonferroni over
    the set's size (the verdict's closure) holds it to 5%/4 ({a, e} with {b, c, d}). The
    price: a a little ahead of d and e (p = 0.011 each) is not rejected, since {a, d, e}
    beside {b, c} holds each of a, d, e's pairs to 5%/6, where the verdict's holds them to
    5%/4."""
    index = list(itertools.combinations(range(5), 2))
    lead = {(0, 1): 1e-4, (0, 2): 2e-4, (0, 3): 3e-4, (0, 4): 0.02}
    ps = [lead.get(pair, 0.5) for pair in index]
    rejected, held = _closed_step_at_one_look(ps, 5)
    assert rejected == {index.index(pair) for pair in lead}
    assert held[index.index((0, 4))] == 2
    assert _bergmann_hommel_p(ps, 5)[index.index((0, 4))] == pytest.approx(4 * 0.02)
    close = {(0, 1): 1e-4, (0, 2): 2e-4, (0, 3): 0.011, (0, 4): 0.011}
    ps = [close.get(pair, 0.5) for pair in index]
    rejected, _ = _closed_step_at_one_look(ps, 5)
    assert rejected == {index.index((0, 1)), index.index((0, 2))}
    assert stats.strictest(5, np.isin(np.arange(len(index)), list(rejected))) == 6


def test_beyond_nine_candidates_shaffers_count_stands_in_for_the_closed_test():
    """Ten means (115,975 groupings): the verdict's adjusted p-values and the race's step
    are Holm's step-down with Shaffer's count."""
    index = list(itertools.combinations(range(10), 2))
    ps = list(np.linspace(0.0002, 0.05, len(index))[::-1])  # the smallest last
    found = [stats.Difference(0.0, 0.0, 4, 4, test=stats.PAIRED, p=p) for p in ps]
    adjusted = [d.p_adjusted for d in stats.bergmann_hommel(found, index)]
    oracle = _shaffer_p(ps, 10)
    assert adjusted == pytest.approx(oracle)

    def crosses(divisor: int) -> np.ndarray:
        return np.array([p <= 0.05 / divisor for p in ps])

    now, _ = stats.closed_step(10, crosses, np.zeros(len(index), dtype=bool))
    assert list(now) == [q <= 0.05 for q in oracle] and 0 < now.sum() < len(index)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6, 7])
def test_shaffers_counts_of_hypotheses_that_can_be_true_together(k):
    """Counted here from every set partition of k means (the equal ones grouped): for 4
    and 5 means, the counts Shaffer (1986) lists, 0-3 and 6; 0-4, 6 and 10."""
    counts = {sum(len(g) * (len(g) - 1) // 2 for g in p) for p in _set_partitions(list(range(k)))}
    assert stats.possible_true(k) == counts
    m = k * (k - 1) // 2
    for rejected in range(m + 1):
        assert stats.most_true(k, rejected) == max(t for t in counts if t <= m - rejected)
    if k in (4, 5):
        assert sorted(counts) == {4: [0, 1, 2, 3, 6], 5: [0, 1, 2, 3, 4, 6, 10]}[k]


def test_two_candidates_get_their_paired_t():
    rows = [("b0", s, v, 10) for s, v in B0.items()]
    rows += [("mobilenet_v2", s, v, 5) for s, v in MOBILENET.items()]
    (pair,) = pairs.family(_study(rows))
    oracle = scipy_stats.ttest_rel(list(B0.values()), list(MOBILENET.values()))
    assert pair.difference.test == stats.PAIRED
    assert pair.difference.p == pytest.approx(oracle.pvalue)


def test_a_reference_fixed_in_advance_is_compared_with_each_other_candidate_alone():
    found = pairs.family(_study(_holm_rows()), reference="b0")
    others = [n for n in sorted(HOLM) if n != "b0"]
    assert [(p.a, p.b) for p in found] == [("b0", o) for o in others]
    rows = {name: HOLM[name] for name in sorted(HOLM)}
    raw = [_block_p(rows, "b0", o) for o in others]
    assert [p.difference.p_adjusted for p in found] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    notes = " ".join(_decide(_holm_rows(), reference="b0").notes)
    assert "adjusted over 4 comparisons at 95% by Holm's method;" in notes  # not Shaffer's


def test_the_verdict_names_validations_leader_and_decides_each_candidate_against_it():
    found = _decide(_holm_rows())
    assert found.leader == "mobilenet_v2"
    assert found.headline.startswith("mobilenet_v2 (test accuracy 0.815 [")
    assert _table_row(found, "b1")["decision"] == "worse"
    assert _table_row(found, "mobilenet_v2")["decision"] == "chosen"
    assert _table_row(found, "b0")["decision"].startswith("not resolved: ")
    # b3 is worse by the closed test (adjusted p 0.039; 0.041 at Shaffer's count); Holm's
    # own count leaves it open.
    assert _table_row(found, "b3")["decision"] == "worse"
    assert len(found.headline.split()) <= 60
    assert "adjusted over 10 comparisons at 95% by Bergmann and Hommel's closed test" in (
        " ".join(found.notes)
    )


def test_two_one_sided_tests_match_statsmodels():
    a = {1: 0.80, 2: 0.81, 3: 0.805, 4: 0.79, 5: 0.80}
    b = {1: 0.799, 2: 0.806, 3: 0.80, 4: 0.792, 5: 0.797}
    oracle = ttost_paired(np.array(list(a.values())), np.array(list(b.values())), -0.01, 0.01)
    assert stats.equivalence(stats.compare(a, b), margin=0.01) == pytest.approx(oracle[0])


def test_a_wide_interval_is_never_equivalent_and_a_narrow_one_inside_the_margin_is():
    narrow = [("b0", s, 0.80 + 0.001 * (s % 2), 10) for s in range(1, 6)]
    narrow += [("mobilenet_v2", s, 0.8005 + 0.001 * ((s + 1) % 2), 5) for s in range(1, 6)]
    found = _decide(narrow)
    assert _table_row(found, "b0")["decision"] == "equivalent within ±1.0"
    assert "is within ±1.0 points of b0" in found.headline
    # The demo's MobileNetV2 against B0: a 95% interval of [-14.3, +19.0] points.
    wide = [("b0", s, v, 10) for s, v in {1: 0.438, 2: 0.472, 3: 0.423}.items()]
    wide += [("mobilenet_v2", s, v, 5) for s, v in {1: 0.533, 2: 0.435, 3: 0.435}.items()]
    found = _decide(wide)
    decision = _table_row(found, "b0")["decision"]
    assert decision.startswith("not resolved: ") and "equivalent" not in found.headline
    assert "not resolved" in found.headline


def test_the_seeds_needed_are_those_that_would_tell_the_margin_apart():
    found = stats.compare({1: 0.80, 2: 0.83, 3: 0.81}, {1: 0.79, 2: 0.80, 3: 0.80})
    # A spread of 1.155 points: telling a 1-point difference at 5% with 80% power takes a
    # paired t over n seeds with noncentrality 1 / (1.155 / sqrt(n)); scipy's noncentral t
    # crosses 80% at n = 13 (12: 0.781).
    assert stats.seeds_needed(found, effect=0.01) == 13
    assert stats.seeds_needed(found, effect=0.05) == 3  # whatever the difference observed
    df, nc = 12, 0.01 / (found.spread / np.sqrt(13))
    critical = scipy_stats.t.ppf(0.975, df)
    assert scipy_stats.nct.sf(critical, df, nc) + scipy_stats.nct.cdf(-critical, df, nc) >= 0.8


def test_probability_of_improvement_counts_ties_half_with_wilsons_interval():
    found = stats.probability_of_improvement({1: 1.0, 2: 0.5, 3: 0.2, 4: 0.7},
                                             {1: 0.9, 2: 0.5, 3: 0.3, 4: 0.6})  # fmt: skip
    assert (found.probability, found.pairs) == (0.625, 4)  # two wins, a tie, a loss
    three_of_four = stats.probability_of_improvement({1: 1, 2: 1, 3: 1, 4: 0},
                                                     {1: 0, 2: 0, 3: 0, 4: 1})  # fmt: skip
    oracle = scipy_stats.binomtest(3, 4).proportion_ci(confidence_level=0.95, method="wilson")
    assert three_of_four.interval == pytest.approx((oracle.low, oracle.high))
    assert stats.probability_of_improvement({1: 1.0}, {2: 0.5}) is None  # no shared seed


def test_a_bootstrap_interval_only_from_enough_pairs_to_cover():
    rng = np.random.default_rng(0)
    a = {s: 0.80 + 0.01 * rng.standard_normal() for s in range(1, stats.BOOTSTRAP_FROM + 1)}
    b = {s: v - 0.005 for s, v in a.items()}
    b = {s: v + 0.01 * rng.standard_normal() for s, v in b.items()}
    found = stats.compare(a, b)
    differences = np.array([a[s] - b[s] for s in a])
    oracle = scipy_stats.bootstrap((differences,), np.mean, n_resamples=4999,
                                   random_state=np.random.default_rng(0))  # fmt: skip
    assert found.bootstrap == pytest.approx(tuple(oracle.confidence_interval))
    fewer = {s: a[s] for s in range(1, stats.BOOTSTRAP_FROM)}
    assert stats.compare(fewer, b).bootstrap is None


def test_a_single_seed_side_is_not_tested_and_the_headline_says_what_would():
    rows = [("b0", 1, 0.90, 10), ("mobilenet_v2", 1, 0.86, 5)]
    found = _decide(rows)
    assert "rerun with seed=1,2,3" in found.headline
    assert _table_row(found, "mobilenet_v2")["decision"] == "not tested"


def test_a_difference_within_the_test_sets_own_noise_is_flagged():
    rows = [("b0", s, 0.80 + 0.002 * s, 10) for s in range(1, 4)]
    rows += [("mobilenet_v2", s, 0.81 + 0.002 * s + 0.001 * (s == 2), 5) for s in range(1, 4)]
    frame = _runs(rows).assign(**{"splits.test.examples": 400})
    (found,) = tables.comparisons(frame).values()
    decided = verdict.decide(select.study(found, ["backbone"]))
    # sqrt(0.81 * 0.19 / 400) = 1.96 points: a 1-point difference is within it.
    assert decided.table.set_index("candidate").loc["b0", "decision"].endswith("within test noise")
    assert "400 images" in " ".join(decided.notes) and "2.0 points" in " ".join(decided.notes)


def test_without_a_test_split_every_figure_says_it_is_validation_also_used_for_selection():
    rows = [("b0", s, 0.80 + 0.01 * s, 10) for s in range(1, 4)]
    rows += [("mobilenet_v2", s, 0.70 + 0.01 * s, 5) for s in range(1, 4)]
    (found,) = tables.comparisons(_runs(rows, test=False)).values()
    decided = verdict.decide(select.study(found, ["backbone"]))
    assert verdict.metric_name(select.study(found, ["backbone"])) == (
        "validation accuracy (validation, also used for selection)"
    )
    assert "also used for selection" in " ".join(decided.notes)


# Demšar (2006), Table 6: AUC of four C4.5 variants on 14 data sets. Its ranks give
# chi2_F = 9.28 and F_F = 3.69 with 3 and 39 degrees of freedom (critical value 2.85 at 5%).
DEMSAR_AUC = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.975, 0.975], [0.957, 0.978, 0.946, 0.970],
])  # fmt: skip


def test_iman_davenport_matches_demsars_worked_example():
    table = np.array([scipy_stats.rankdata(-row) for row in DEMSAR_AUC])
    # The paper ranks the two 0.975s of its 13th data set 2 and 3 (unrounded, they differ).
    table[12] = [4, 1, 2, 3]
    assert table.mean(axis=0) == pytest.approx([3.143, 2.000, 2.893, 1.964], abs=5e-4)
    f, p = ranks.iman_davenport(table)
    assert f == pytest.approx(3.69, abs=0.005)
    assert p < 0.05 and f > scipy_stats.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=0.005)


def _studies(scores: dict[str, dict[str, float]]) -> dict[str, select.Study]:
    rows = []
    for dataset, by_backbone in scores.items():
        for backbone, score in by_backbone.items():
            for seed in (1, 2):
                rows.append((backbone, seed, score + 0.001 * seed, 10, dataset))
    frame = pd.DataFrame(rows, columns=["backbone", "seed", "test_accuracy",
                                        "train_time_s", "dataset"])  # fmt: skip
    frame["final_val_accuracy"] = frame["test_accuracy"]
    frame["status"], frame["params_total"], frame["image_size"] = "completed", 1e6, 224
    return {d: select.study(c, ["backbone"]) for d, c in tables.comparisons(frame).items()}


def test_ranks_across_datasets_with_iman_davenport_and_nemenyi():
    # Six datasets; mobilenet_v2 first on each, b1 second on five, b0 last on five.
    order = [("mobilenet_v2", "b1", "b0")] * 5 + [("mobilenet_v2", "b0", "b1")]
    scores = {f"d{i}": {name: 0.9 - 0.1 * place for place, name in enumerate(names)}
              for i, names in enumerate(order)}  # fmt: skip
    found = ranks.rank(_studies(scores))
    means = found.mean_ranks
    assert list(means.index) == ["mobilenet_v2", "b1", "b0"]
    assert means.tolist() == pytest.approx([1.0, 13 / 6, 17 / 6])
    # chi2_F = 12*6/(3*4) * (1 + (13/6)^2 + (17/6)^2 - 12) = 10.333; F = 5 chi2 / (12 - chi2).
    chi2 = 6 * (1 + (13 / 6) ** 2 + (17 / 6) ** 2 - 12)
    assert found.statistic == pytest.approx(5 * chi2 / (12 - chi2))
    assert found.p == pytest.approx(scipy_stats.f.sf(5 * chi2 / (12 - chi2), 2, 10))
    assert found.test == "Iman-Davenport F"
    # Nemenyi: q(0.05, 3 groups) = 3.314 / sqrt(2) = 2.343; CD = 2.343 * sqrt(3*4 / (6*6)).
    assert found.cd == pytest.approx(1.3529, abs=1e-3)
    assert found.separated == [("mobilenet_v2", "b0")]  # 1.83 ranks apart; b1 only 1.17
    assert "the data separates mobilenet_v2 from b0" in found.sentence()


def test_a_point_whose_interval_reaches_the_front_is_not_separable_from_it():
    cost = pd.Series({"a": 1.0, "b": 2.0, "c": 3.0})
    accuracy = pd.Series({"a": 0.80, "b": 0.90, "c": 0.85})  # c is off the front (b beats it)
    low, high = accuracy - 0.02, accuracy + 0.02
    assert plots.pareto(cost, accuracy) == ["a", "b"]
    assert plots.inseparable(cost, accuracy, low, high) == []  # 0.87 < 0.88
    assert plots.inseparable(cost, accuracy, low, high + 0.02) == ["c"]  # 0.89 >= 0.88
