"""Bootstrap intervals from predictions (mlci.stats): the metrics are scikit-learn's,
the intervals cover what they claim, and paired differences find small real changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlci import stats
from mlci.errors import ConfigError


class _Metrics:
    """sklearn.metrics, imported on first use (it stays off test collection's path)."""

    def __getattr__(self, name: str) -> Any:
        from sklearn import metrics

        return getattr(metrics, name)


skm = _Metrics()


def _predictions(
    y_true: Any, y_pred: Any = None, y_score: Any = None, ids: Any = None, regression: bool = False
) -> stats.Predictions:
    y_true = np.asarray(y_true)
    labels = set(y_true.tolist()) | (set(np.asarray(y_pred).tolist()) if y_pred is not None else set())
    return stats.Predictions(
        y_true,
        None if y_pred is None else np.asarray(y_pred),
        None if y_score is None else np.asarray(y_score, dtype=np.float64),
        None if ids is None else np.asarray(ids, dtype=object),
        () if regression else tuple(sorted(labels)),
        regression,
    )


def _binary(n: int = 400, seed: int = 1, ties: bool = False) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 * y + rng.normal(0.25, 0.25, n), 0, 1)
    if ties:
        score = np.round(score, 1)  # many equal scores
    return y, (score >= 0.5).astype(int), score


def _multiclass(n: int = 300, seed: int = 2) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


BINARY = _binary()
TIES = _binary(ties=True)
MULTI = _multiclass()


@pytest.mark.parametrize(
    ("name", "data", "reference"),
    [
        ("accuracy", BINARY, lambda y, p, s, w: skm.accuracy_score(y, p, sample_weight=w)),
        ("balanced_accuracy", BINARY, lambda y, p, s, w: skm.balanced_accuracy_score(y, p, sample_weight=w)),
        ("precision", BINARY, lambda y, p, s, w: skm.precision_score(y, p, sample_weight=w)),
        ("recall", BINARY, lambda y, p, s, w: skm.recall_score(y, p, sample_weight=w)),
        ("f1", BINARY, lambda y, p, s, w: skm.f1_score(y, p, sample_weight=w)),
        ("roc_auc", BINARY, lambda y, p, s, w: skm.roc_auc_score(y, s, sample_weight=w)),
        ("roc_auc", TIES, lambda y, p, s, w: skm.roc_auc_score(y, s, sample_weight=w)),
        ("average_precision", BINARY, lambda y, p, s, w: skm.average_precision_score(y, s, sample_weight=w)),
        ("average_precision", TIES, lambda y, p, s, w: skm.average_precision_score(y, s, sample_weight=w)),
        ("log_loss", BINARY, lambda y, p, s, w: skm.log_loss(y, s, sample_weight=w)),
        ("accuracy", MULTI, lambda y, p, s, w: skm.accuracy_score(y, p, sample_weight=w)),
        ("balanced_accuracy", MULTI, lambda y, p, s, w: skm.balanced_accuracy_score(y, p, sample_weight=w)),
        ("precision", MULTI, lambda y, p, s, w: skm.precision_score(y, p, average="macro", sample_weight=w)),
        ("recall", MULTI, lambda y, p, s, w: skm.recall_score(y, p, average="macro", sample_weight=w)),
        ("f1", MULTI, lambda y, p, s, w: skm.f1_score(y, p, average="macro", sample_weight=w)),
        ("log_loss", MULTI, lambda y, p, s, w: skm.log_loss(y, s, sample_weight=w)),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_classification_metrics_are_scikit_learns(
    name: str, data: Any, reference: Any, weighted: bool
) -> None:
    """Every row weighing 1 gives scikit-learn's value; Poisson weights give its sample_weight value."""
    y, pred, score = data
    predictions = _predictions(y, pred, score)
    weights = np.random.default_rng(5).poisson(1.0, len(y)).astype(np.float32) if weighted else None
    prepared = stats._Prepared(predictions)
    row = np.ones(len(y), dtype=np.float32) if weights is None else weights
    # Weights are given in the prepared rows' order (sorted by score).
    ours = float(stats._evaluate([name], prepared, row[prepared.order][None, :])[name][0])
    assert ours == pytest.approx(reference(y, pred, score, weights), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("rmse", lambda y, p, w: np.sqrt(skm.mean_squared_error(y, p, sample_weight=w))),
        ("mae", lambda y, p, w: skm.mean_absolute_error(y, p, sample_weight=w)),
        ("r2", lambda y, p, w: skm.r2_score(y, p, sample_weight=w)),
    ],
)
def test_regression_metrics_are_scikit_learns(name: str, reference: Any) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(150, 60, 300)
    pred = y + rng.normal(0, 40, 300)
    predictions = _predictions(y, pred, regression=True)
    assert stats.point(name, predictions) == pytest.approx(reference(y, pred, None), rel=1e-5)
    weights = rng.poisson(1.0, 300).astype(np.float32)
    ours = float(stats._evaluate([name], stats._Prepared(predictions), weights[None, :])[name][0])
    assert ours == pytest.approx(reference(y, pred, weights), rel=1e-4)


def test_text_labels_take_the_greater_label_as_positive() -> None:
    y, pred, score = BINARY
    words = np.where(y == 1, "yes", "no")
    predictions = _predictions(words, np.where(pred == 1, "yes", "no"), score)
    assert stats.point("f1", predictions) == pytest.approx(skm.f1_score(y, pred))
    assert stats.point("roc_auc", predictions) == pytest.approx(skm.roc_auc_score(y, score))


def test_what_cannot_be_recomputed_is_left_out() -> None:
    y, pred, _ = BINARY
    labels_only = _predictions(y, pred)
    assert stats.recomputable("accuracy", labels_only)
    assert not stats.recomputable("roc_auc", labels_only)  # no scores
    assert not stats.recomputable("matthews", labels_only)  # not in the table
    assert set(stats.intervals(labels_only, ["accuracy", "roc_auc", "matthews"], resamples=200)) == {
        "accuracy"
    }
    y3, pred3, proba3 = MULTI
    assert not stats.recomputable("roc_auc", _predictions(y3, pred3, proba3))  # binary only


def test_a_reported_metric_is_checked_against_the_recomputed_one() -> None:
    y, pred, score = BINARY
    predictions = _predictions(y, pred, score)
    exact = skm.accuracy_score(y, pred)
    assert stats.agrees("accuracy", predictions, exact)
    assert stats.agrees("accuracy", predictions, round(exact, 4))  # metrics.json may round
    assert not stats.agrees("accuracy", predictions, round(exact, 4) + 0.001)  # another split
    assert not stats.agrees("f1", predictions, skm.f1_score(y, pred, average="macro"))  # another averaging


def test_intervals_are_reproducible_and_bracket_the_value() -> None:
    y, pred, score = BINARY
    predictions = _predictions(y, pred, score)
    names = ["accuracy", "f1", "roc_auc", "log_loss"]
    first = stats.intervals(predictions, names)
    assert first == stats.intervals(predictions, names)  # a fixed seed: the same report every time
    for name, interval in first.items():
        assert interval.low < interval.value < interval.high, name
        assert interval.confidence == 0.95 and interval.resamples == 2000
    narrower = stats.intervals(predictions, names, confidence=0.8)
    assert all(narrower[n].high - narrower[n].low < first[n].high - first[n].low for n in names)


def test_the_poisson_weights_are_poisson() -> None:
    weights = np.concatenate([stats._weights(bits) for bits in stats._resample_bits(10_000, 200, seed=1)])
    assert weights.shape == (200, 10_000)
    assert weights.mean() == pytest.approx(1.0, abs=0.005) and weights.var() == pytest.approx(1.0, abs=0.01)
    counts = np.bincount(weights.astype(int).ravel(), minlength=5)[:5] / weights.size
    assert counts == pytest.approx([0.3679, 0.3679, 0.1839, 0.0613, 0.0153], abs=0.002)


@pytest.mark.slow
def test_the_95_percent_interval_covers_the_true_accuracy_95_percent_of_the_time() -> None:
    """1,000 test sets of 500 rows from a model whose true accuracy is 0.8."""
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(1000):
        correct = rng.random(500) < 0.8
        y = rng.integers(0, 2, 500)
        pred = np.where(correct, y, 1 - y)
        interval = stats.intervals(_predictions(y, pred), ["accuracy"], seed=trial)["accuracy"]
        covered += interval.low <= 0.8 <= interval.high
    assert 930 <= covered <= 970, covered


def _paired_trial(rng: np.random.Generator, drop: float, rows: int = 10_000) -> tuple[Any, Any, Any]:
    """Two models that disagree on 6% of the rows (on each, exactly one of them is right)
    and agree elsewhere (both right on 91.5% of those): the base is right on about 89.5%
    of rows, the head on ``drop`` fewer."""
    y = rng.integers(0, 2, rows)
    agree = rng.random(rows) >= 0.06
    both_right = rng.random(rows) < 0.915
    head_wins = rng.random(rows) < (1 - drop / 0.06) / 2
    base_right = np.where(agree, both_right, ~head_wins)
    head_right = np.where(agree, both_right, head_wins)
    return y, np.where(base_right, y, 1 - y), np.where(head_right, y, 1 - y)


def _regression_flagged(interval: stats.Interval) -> bool:
    return interval.high < 0  # the whole interval of head - base is a loss


@pytest.mark.slow
def test_a_paired_comparison_finds_a_real_one_percent_drop_and_ignores_none() -> None:
    """10,000 rows; 100 trials each: a true 1% accuracy drop is found in at least 95% of
    them, and no change is flagged as a regression in at most 5%."""
    rng = np.random.default_rng(12)
    found = flagged = 0
    drops = []
    for trial in range(100):
        y, base, head = _paired_trial(rng, drop=0.01)
        drops.append(skm.accuracy_score(y, base) - skm.accuracy_score(y, head))
        diff = stats.differences(
            _predictions(y, head), _predictions(y, base), ["accuracy"], resamples=1000, seed=trial
        )
        assert diff["accuracy"].paired
        found += _regression_flagged(diff["accuracy"])
        y, base, head = _paired_trial(rng, drop=0.0)
        diff = stats.differences(
            _predictions(y, head), _predictions(y, base), ["accuracy"], resamples=1000, seed=trial
        )
        flagged += _regression_flagged(diff["accuracy"])
    assert np.mean(drops) == pytest.approx(0.01, abs=0.001)  # the simulated drop is 1%
    assert found >= 95, found
    assert flagged <= 5, flagged


def test_unpaired_rows_are_resampled_independently_and_are_less_sure() -> None:
    rng = np.random.default_rng(13)
    y, base, head = _paired_trial(rng, drop=0.01, rows=2000)
    paired = stats.differences(_predictions(y, head), _predictions(y, base), ["accuracy"])["accuracy"]
    other_rows = _predictions(np.r_[y[1:], y[:1]], np.r_[base[1:], base[:1]])
    shifted = _predictions(y, head)
    assert not stats.same_rows(shifted, other_rows)
    unpaired = stats.differences(shifted, other_rows, ["accuracy"])["accuracy"]
    assert paired.paired and not unpaired.paired
    assert (unpaired.high - unpaired.low) > 1.5 * (paired.high - paired.low)


def test_rows_with_ids_pair_in_any_order() -> None:
    y, pred, score = BINARY
    ids = [f"row-{i}" for i in range(len(y))]
    order = np.random.default_rng(4).permutation(len(y))
    a = _predictions(y, pred, score, ids)
    b = _predictions(y[order], pred[order], score[order], np.asarray(ids)[order])
    assert stats.same_rows(a, b)
    diff = stats.differences(a, b, ["accuracy", "roc_auc"])
    assert diff["accuracy"].paired and diff["accuracy"].value == 0 and diff["accuracy"].high == 0
    assert diff["roc_auc"].low == pytest.approx(0, abs=1e-9) and diff["roc_auc"].high == pytest.approx(
        0, abs=1e-9
    )


# --------------------------------------------------------------------------- the file


def test_a_predictions_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text(
        "id,y_true,y_pred,y_score_0,y_score_1,y_score_2\na,0,0,0.7,0.2,0.1\nb,2,1,0.1,0.5,0.4\nc,1,1,0.2,0.6,0.2\n"
    )
    read = stats.read_predictions(path)
    assert read.rows == 3 and read.classes == (0.0, 1.0, 2.0) and not read.regression
    assert read.y_score is not None and read.y_score.shape == (3, 3)
    assert read.ids is not None and read.ids.tolist() == ["a", "b", "c"]
    binary = tmp_path / "binary.csv"
    binary.write_text("y_true,y_score\nyes,0.9\nno,0.2\nyes,0.4\n")
    read = stats.read_predictions(binary)
    assert read.classes == ("no", "yes") and read.y_score is not None and read.y_score.ndim == 1
    assert stats.point("roc_auc", read) == 1.0
    regression = tmp_path / "regression.csv"
    regression.write_text("y_true,y_pred\n151.0,140.5\n75.0,90.25\n141.0,150.0\n")
    assert stats.read_predictions(regression).regression


def test_the_digest_names_the_rows_not_the_predictions(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("y_true,y_pred\n1,1\n0,0\n1,0\n")
    b.write_text("y_true,y_pred\n1,0\n0,1\n1,1\n")
    assert stats.read_predictions(a).digest() == stats.read_predictions(b).digest()
    b.write_text("y_true,y_pred\n1.0,0\n0.0,1\n0,1\n")
    assert stats.read_predictions(a).digest() != stats.read_predictions(b).digest()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("y_pred\n1\n", "has no y_true column"),
        ("y_true\n1\n", "no y_pred or y_score"),
        ("y_true,y_score\n1,high\n", "not a number"),
        ("y_true,y_score\n1,nan\n", "NaN or infinite"),
        ("y_true,y_pred\n1,1\n0\n", "line 3 has 1 fields"),
        ("id,y_true,y_pred\na,1,1\na,0,0\n", "repeated values"),
        ("y_true,y_score\n0,0.1\n1,0.5\n2,0.9\n", "one y_score column for 3 classes"),
        ("y_true,y_score_0,y_score_7\n0,0.5,0.5\n", "no row's label is"),
        ("y_true,y_pred\n", "has no rows"),
    ],
)
def test_a_bad_predictions_file_says_what_and_where(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        stats.read_predictions(path)
    assert says in str(error.value) and "predictions.csv" in str(error.value)


def test_a_missing_predictions_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="was not written"):
        stats.read_predictions(tmp_path / "nowhere.csv")


def test_parquet_predictions(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "predictions.parquet"
    y, pred, score = BINARY
    pq.write_table(pa.table({"y_true": y, "y_pred": pred, "y_score": score}), path)
    read = stats.read_predictions(path)
    assert stats.point("roc_auc", read) == pytest.approx(skm.roc_auc_score(y, score))


# --------------------------------------------------------------------------- across seeds (train.repeats)


@pytest.mark.parametrize(
    ("confidence", "df", "expected"),
    [  # Student's t table, two-sided
        (0.95, 1, 12.706),
        (0.95, 2, 4.303),
        (0.95, 4, 2.776),
        (0.95, 9, 2.262),
        (0.95, 19, 2.093),
        (0.90, 3, 2.353),
        (0.99, 5, 4.032),
        (0.99, 30, 2.750),
    ],
)
def test_t_quantiles_are_the_tables(confidence: float, df: int, expected: float) -> None:
    assert stats.t_quantile(confidence, df) == pytest.approx(expected, abs=5e-4)


def test_the_interval_across_seeds_covers_the_true_mean_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(3)
    trials, covered = 1000, 0
    for _ in range(trials):
        found = stats.seed_interval(list(rng.normal(0.9, 0.01, size=5)))
        covered += found.low <= 0.9 <= found.high
    assert 0.93 * trials <= covered <= 0.97 * trials


def test_a_paired_difference_across_seeds_is_surer_than_an_unpaired_one() -> None:
    base = [0.90, 0.88, 0.93, 0.91, 0.89]  # the seeds matter far more than the change
    head = [b - 0.01 for b in base]
    paired = stats.seed_difference(head, base, paired=True)
    unpaired = stats.seed_difference(head, base)
    assert paired.paired and paired.low == pytest.approx(-0.01) == paired.high
    assert not unpaired.paired and unpaired.low < -0.03 and unpaired.high > 0.01
    against_one = stats.seed_difference(head, 0.9)  # a baseline trained once: its value
    assert against_one.value == pytest.approx(sum(head) / 5 - 0.9) and against_one.seeds == 5
    assert stats.seed_interval([0.9]).low != stats.seed_interval([0.9]).low  # NaN: one seed says nothing


@pytest.mark.parametrize(
    ("raw", "metrics"),
    [
        ({"seeds": [0, 1, 2], "metrics": {"accuracy": [0.9, 0.91, 0.92]}}, {"accuracy"}),
        ('{"seeds": [0, 1], "metrics": {"a": [1, 2], "b": [1]}}', {"a"}),  # b: one value short
        ({"seeds": [0, 1], "metrics": {"a": [1, float("nan")], "b": [1, True]}}, None),
        ({"seeds": [0], "metrics": {"a": [1]}}, None),  # one seed is no spread
        ({"seeds": [0, "1"], "metrics": {"a": [1, 2]}}, None),
        ({"seeds": [0, 1], "metrics": [1, 2]}, None),
        ("not json", None),
        ([0, 1], None),
    ],
)
def test_repeats_are_read_as_data(raw: Any, metrics: set[str] | None) -> None:
    from mlci import evidence

    found = evidence.repeats_from(raw)
    assert (set(found.values) if found else None) == metrics


def test_repeats_count_only_where_their_mean_is_the_reported_value() -> None:
    from mlci import evidence

    raw = {"seeds": [0, 1], "metrics": {"a": [0.8, 0.9], "b": [0.1, 0.3]}}
    found = evidence.repeats_from(raw, {"a": 0.85, "b": 0.5})  # b's mean is 0.2, not 0.5
    assert found is not None and set(found.values) == {"a"}
