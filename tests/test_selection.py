"""Train fits, validation selects, test reports: each candidate at its own best, chosen on
validation; diverged runs as results at chance; budget curves (allentune's estimator, worked
out by hand here); and the figures a report must never show as results."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.analysis import budget, pairs, select, tables, verdict


def _runs(rows: list[tuple]) -> pd.DataFrame:
    """(backbone, lr, seed, validation, test) rows, 4 classes, 100 s each."""
    frame = pd.DataFrame(
        rows, columns=["backbone", "lr", "seed", "final_val_accuracy", "test_accuracy"]
    )
    frame["status"], frame["dataset"], frame["image_size"] = "completed", "d", 224
    frame["train_time_s"], frame["dataset.num_classes"] = 100.0, 4
    frame["best_val_accuracy"] = frame["final_val_accuracy"] + 0.05  # a max over epochs
    return frame


def _study(frame: pd.DataFrame) -> select.Study:
    (found,) = tables.comparisons(frame).values()
    return select.study(found, ["backbone"])


# Validation prefers lr=0.01 for MobileNetV2 and lr=0.001 for B0; on test, lr=0.001 would
# look best for MobileNetV2 too. The verdict must follow validation.
GRID = {
    ("mobilenet_v2", 0.01): ([0.60, 0.62, 0.61], [0.50, 0.52, 0.51]),
    ("mobilenet_v2", 0.001): ([0.55, 0.56, 0.57], [0.58, 0.59, 0.60]),
    ("b0", 0.01): ([0.40, 0.42, 0.41], [0.41, 0.43, 0.42]),
    ("b0", 0.001): ([0.50, 0.51, 0.52], [0.47, 0.48, 0.49]),
}


def _grid() -> pd.DataFrame:
    return _runs([
        (backbone, lr, seed, val[seed - 1], test[seed - 1])
        for (backbone, lr), (val, test) in GRID.items() for seed in (1, 2, 3)
    ])  # fmt: skip


def test_validation_chooses_each_candidates_configuration_and_test_reports_it():
    found = _study(_grid())
    assert found.tuning == ["lr"]
    chosen = {c.label: c.chosen.label for c in found.choices}
    assert chosen == {"b0": "lr=0.001", "mobilenet_v2": "lr=0.01"}
    # MobileNetV2's score is lr=0.01's test accuracy, not the higher lr=0.001 one.
    assert found.scores("mobilenet_v2") == {1: 0.50, 2: 0.52, 3: 0.51}
    decided = verdict.decide(found)
    row = decided.table.set_index("candidate").loc["mobilenet_v2"]
    assert row["configuration"] == "lr=0.01 (best of 2)"
    assert row["test accuracy"].startswith("0.510 [")


def test_each_backbone_is_compared_at_its_own_best_not_at_a_shared_learning_rate():
    found = _study(_grid())
    (pair,) = pairs.family(found)
    # b0 at lr=0.001 (0.47, 0.48, 0.49) against mobilenet_v2 at lr=0.01 (0.50, 0.52, 0.51).
    assert (pair.a, pair.b) == ("b0", "mobilenet_v2")
    assert pair.difference.value == pytest.approx(0.48 - 0.51)
    decided = verdict.decide(found)
    assert decided.leader == "mobilenet_v2"  # validation's: 0.61 against 0.51
    assert "mobilenet_v2 lr=0.01 (best of 2, 6 runs)" in " ".join(decided.notes)


def test_a_diverged_run_counts_at_chance_and_its_failure_rate_shows():
    frame = _grid()
    diverged = {"backbone": "b0", "lr": 0.001, "seed": 4, "status": "failed",
                "error_type": "Diverged", "dataset": "d", "image_size": 224,
                "train_time_s": 20.0, "dataset.num_classes": 4}  # fmt: skip
    lost = {**diverged, "seed": 5, "error_type": "OutOfMemory"}  # a missing seed, not a result
    found = _study(pd.concat([frame, pd.DataFrame([diverged, lost])], ignore_index=True))
    b0 = found.choice("b0")
    setting = next(s for s in b0.settings if s.label == "lr=0.001")
    assert setting.val[4] == setting.test[4] == 0.25 and 5 not in setting.val
    assert setting.failure_rate == pytest.approx(1 / 4)
    assert b0.chosen.label == "lr=0.001"  # (0.50 + 0.51 + 0.52 + 0.25) / 4 = 0.445 > 0.41
    row = verdict.decide(found).table.set_index("candidate").loc["b0"]
    assert row["failed"] == "1 of 4"
    table = found.comparison.table
    assert table.loc[setting.key, ("diverged", "mean")] == pytest.approx(0.25)


def test_the_budget_estimator_is_allentunes_expected_max_with_replacement():
    values = [0.1, 0.3, 0.2]
    assert budget.expected_max(values, 1) == pytest.approx(0.2)  # n = 1: the mean
    # n = N = 3: P(max is the i-th smallest) = (i/3)^3 - ((i-1)/3)^3 = 1/27, 7/27, 19/27.
    assert budget.expected_max(values, 3) == pytest.approx((0.1 * 1 + 0.2 * 7 + 0.3 * 19) / 27)
    # n = 2: 1/9, 3/9, 5/9.
    assert budget.expected_max(values, 2) == pytest.approx((0.1 * 1 + 0.2 * 3 + 0.3 * 5) / 9)


def test_budget_curves_give_the_test_accuracy_of_what_n_trials_would_select():
    found = _study(_grid())
    curve = budget.curve(found.choice("mobilenet_v2"))
    assert list(curve["n"]) == list(range(1, 7))
    vals = sorted(v for s in found.choice("mobilenet_v2").settings for v in s.val.values())
    assert curve["expected_best_val"].iloc[0] == pytest.approx(sum(vals) / 6)
    # Validation order: 0.55, 0.56, 0.57 (test 0.58..0.60) then 0.60, 0.61, 0.62 (test
    # 0.50, 0.51, 0.52): many trials select lr=0.01 and its lower test accuracy.
    tests = [0.58, 0.59, 0.60, 0.50, 0.51, 0.52]
    w = [((i / 6) ** 6 - ((i - 1) / 6) ** 6) for i in range(1, 7)]
    expected = sum(a * b for a, b in zip(w, tests, strict=True))
    assert curve["expected_test"].iloc[-1] == pytest.approx(expected)
    assert curve["hours"].iloc[1] == pytest.approx(2 * 100 / 3600)
    lead = budget.leads(budget.curves(found))
    assert lead.startswith("With 1 trial, mobilenet_v2 leads; with 6 trials, mobilenet_v2")


def test_budgets_that_differ_are_said_and_compared_at_the_budget_they_share():
    frame = _grid()
    frame = frame[~((frame["backbone"] == "b0") & (frame["lr"] == 0.01))]
    found = _study(frame)
    notes = " ".join(verdict.decide(found).notes)
    assert "Budgets differ (b0 1 configuration, 3 runs; mobilenet_v2 2 configurations, 6 runs)" in (
        notes
    )
    assert "At the budget they share (lr=0.001): Use mobilenet_v2 (test accuracy 0.590" in notes


def test_the_maximum_over_epochs_is_never_a_reported_result():
    (found,) = tables.comparisons(_grid()).values()
    assert "best_val_accuracy" not in found.table.columns.get_level_values(0)
    assert "final_val_accuracy" in found.table.columns.get_level_values(0)


def test_every_group_has_one_label_in_text_tables_and_figures():
    frame = _grid()
    frame = frame[~((frame["backbone"] == "b0") & (frame["lr"] == 0.01))]  # b0: one rate
    found = _study(frame)
    names = found.names()
    assert sorted(names.values()) == ["b0", "mobilenet_v2 lr=0.001", "mobilenet_v2 lr=0.01"]
    decided = verdict.decide(found)
    assert set(decided.table["candidate"]) == {"b0", "mobilenet_v2"}
    assert all(p.a in names.values() or p.a in found.labels for p in decided.pairs)
