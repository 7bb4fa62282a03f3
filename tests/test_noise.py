"""Noise-aware gates end to end, on the scaffolded classifier (real training).

The scaffold writes its test rows' predictions, and its environments gate at 95%
confidence. A change of the random seed alone (a different test split) moves
accuracy by about 2% on 143 rows: the data cannot tell that from noise, so staging
lets it through as inconclusive. A much smaller C is a real regression, paired on
the same rows, and still fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import run
from tests.lifecycle import PREDICTING_CONFIG
from tests.lifecycle import fake_project as _fake_project
from tests.lifecycle import repeating_project as _repeating_project


def _gate(cli, root: Path, env: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = cli("gate", "--env", env, "--json", cwd=root)
    assert result.code in (0, 1), result.err
    data = json.loads(result.out)
    return {"exit": result.code, **data}


def _rule(data: dict, rule: str) -> dict:  # type: ignore[type-arg]
    (found,) = [r for r in data["rules"] if r["metric"] == "accuracy" and r["rule"] == rule]
    return found  # type: ignore[no-any-return]


def test_a_seed_change_is_inconclusive_and_a_real_regression_fails(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "churn"
    assert cli("init", str(root), "--git").code == 0
    run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], tmp_path)
    run(["git", "remote", "add", "origin", str(tmp_path / "origin.git")], root)
    run(["git", "push", "-q", "origin", "main", "staging", "production"], root)
    assert cli("train", cwd=root).code == 0  # the first model
    assert cli("register", cwd=root).code == 0
    assert cli("promote", "staging", cwd=root).code == 0
    params = root / "params.yaml"
    original = params.read_text()

    params.write_text(original.replace("seed: 42", "seed: 1"))
    seed = _gate(cli, root, "staging")
    regression = _rule(seed, "max_regression")
    assert regression["outcome"] == "inconclusive" and regression["passed"] is True
    assert regression["interval"]["paired"] is False  # another split: other rows
    assert regression["interval"]["low"] < -0.01 * 0.98 < regression["interval"]["high"]
    assert seed["exit"] == 0 and seed["passed"] is True and seed["outcome"] == "inconclusive"
    production = _gate(cli, root, "production")
    assert production["exit"] == 1  # production fails it: inconclusive counts as fail there
    assert any(r["outcome"] == "inconclusive" and not r["passed"] for r in production["rules"])
    # and these inputs have never been in staging, which production requires (as CI says)
    (requires,) = [r for r in production["rules"] if r["rule"] == "requires"]
    assert not requires["passed"] and "have never been in staging" in requires["message"]

    params.write_text(original.replace("C: 1.0", "C: 0.01"))
    worse = _gate(cli, root, "staging")
    regression = _rule(worse, "max_regression")
    assert regression["outcome"] == "fail" and regression["interval"]["paired"] is True
    assert regression["interval"]["high"] < -0.01 * 0.98
    assert worse["exit"] == 1 and worse["outcome"] == "fail"
    assert "beyond max_regression 1% at 95%" in regression["message"]

    # The report shows the intervals: the head's, and each change's against a baseline.
    assert cli("report", "--format", "json", "--output", str(tmp_path / "r.json"), cwd=root).code == 0
    data = json.loads((tmp_path / "r.json").read_text())
    head = data["head"]["intervals"]["accuracy"]
    assert head["low"] < data["head"]["metrics"]["accuracy"] < head["high"] and head["confidence"] == 0.95
    (staging,) = [b for b in data["baselines"] if b["key"] == "staging"]
    assert staging["intervals"]["accuracy"]["paired"] is True and staging["intervals"]["accuracy"]["high"] < 0
    assert cli("report", "--format", "markdown", "--output", str(tmp_path / "r.md"), cwd=root).code == 0
    markdown = (tmp_path / "r.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| `accuracy`"))
    assert f"0.9371 [{head['low']:.4f}, {head['high']:.4f}]" in row
    assert "the 95% interval from the test rows' predictions" in markdown


def test_rules_without_predictions_keep_their_point_comparison(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "churn"
    assert cli("init", str(root), "--git").code == 0
    config = root / "mlci.yaml"
    config.write_text(config.read_text().replace("  predictions: predictions.csv\n", ""))
    run(["git", "commit", "-qam", "no predictions"], root)
    result = cli("gate", "--env", "staging", "--json", cwd=root)
    assert result.code == 0, result.err
    assert "judged on point values: the run has no predictions" in result.err
    assert all("confidence" not in r for r in json.loads(result.out)["rules"])


def test_bad_predictions_fail_the_run_and_say_where(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "churn"
    assert cli("init", str(root), "--git").code == 0
    train = root / "train.py"
    train.write_text(
        train.read_text().replace(
            '["id", "y_true", "y_pred", "y_score"]', '["id", "label", "y_pred", "y_score"]'
        )
    )
    run(["git", "commit", "-qam", "a wrong column"], root)
    result = cli("train", cwd=root)
    assert result.code != 0
    assert "train.predictions (predictions.csv)" in result.err and "has no y_true column" in result.err
    assert "Traceback" not in result.err


def _bundle_zip(tmp_path: Path, edit: Callable[[Path], None] | None = None) -> tuple[Path, str]:
    import zipfile

    from mlci.stores import bundle

    fingerprint = "b" * 64
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("id,y_true,y_pred\n1,1,1\n2,0,1\n")
    folder = tmp_path / "bundle"
    bundle.write(
        folder,
        model="m",
        fingerprint=fingerprint,
        run_id="r1",
        metrics={"accuracy": 0.5},
        params={},
        tags={"mlci.predictions": "predictions.csv"},
        model_dir=None,
        predictions=predictions,
    )
    if edit is not None:
        edit(folder)
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return tmp_path / "bundle.zip", fingerprint


def test_predictions_travel_in_a_run_bundle(tmp_path: Path) -> None:
    from mlci.stores import bundle

    zipped, fingerprint = _bundle_zip(tmp_path)
    restored = bundle.restore_zip(
        zipped, tmp_path / "r", model="m", fingerprint=fingerprint, source="artifact x"
    )
    assert restored.predictions is not None and restored.predictions.name == "predictions.csv"
    assert restored.predictions.read_text() == "id,y_true,y_pred\n1,1,1\n2,0,1\n"
    assert restored.tags["mlci.predictions"] == "predictions.csv"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            lambda f: (f / "predictions" / "predictions.csv").write_text("id,y_true,y_pred\n1,1,0\n"),
            "does not match",
        ),
        (lambda f: (f / "predictions" / "predictions.csv").unlink(), "lacks predictions/predictions.csv"),
        (
            lambda f: (f / "run.json").write_text(
                (f / "run.json")
                .read_text()
                .replace('"name": "predictions.csv"', '"name": "../../etc/passwd.csv"')
            ),
            "not a plain name mlci writes there",
        ),
    ],
)
def test_a_bundles_predictions_are_checked_as_data(
    tmp_path: Path, edit: Callable[[Path], None], says: str
) -> None:
    from mlci.stores import bundle

    zipped, fingerprint = _bundle_zip(tmp_path, edit)
    with pytest.raises(bundle.BundleError, match=says):
        bundle.restore_zip(zipped, tmp_path / "r", model="m", fingerprint=fingerprint, source="artifact x")


def test_a_reports_head_predictions_are_read_as_data(tmp_path: Path) -> None:
    """What `mlci publish` bootstraps from: the file beside report.json, whose metrics
    count only where they recompute to the report's own values."""
    from mlci import evidence

    said: list[str] = []
    folder = tmp_path / "report"
    folder.mkdir()
    assert evidence.from_report(folder, {"accuracy": 0.5}, said.append) is None  # none there
    (folder / "head-predictions.csv").write_text("id,y_true,y_pred\n1,1,1\n2,0,1\n3,0,0\n4,1,1\n")
    found = evidence.from_report(folder, {"accuracy": 0.75, "f1": 0.9, "custom": 1.0}, said.append)
    assert found is not None and found.metrics == {"accuracy"}  # f1 is 0.8 here, not 0.9
    (folder / "head-predictions.csv").write_text("id,label\n1,1\n")
    assert evidence.from_report(folder, {"accuracy": 0.75}, said.append) is None
    assert "has no y_true column" in said[-1]
    (folder / "head-predictions.csv").unlink()
    secret = tmp_path / "secret.csv"
    secret.write_text("y_true,y_pred\n1,1\n")
    (folder / "head-predictions.csv").symlink_to(secret)
    assert evidence.from_report(folder, {"accuracy": 1.0}, said.append) is None
    assert "not a regular file" in said[-1]


# --------------------------------------------------------------------------- versions keep their predictions

PREDICTING_TRAIN = """\
import json, os, pathlib, random

params = json.loads(pathlib.Path(os.environ["MLCI_PARAMS_FILE"]).read_text())
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
rows = random.Random(7).choices([0, 1], k=2000)  # the same test rows every time
wrong = int(params["wrong"])
pred = [1 - y if i < wrong else y for i, y in enumerate(rows)]
(out / "model").mkdir(parents=True, exist_ok=True)
(out / "model" / "weights.txt").write_text(str(wrong))
(out / "metrics.json").write_text(json.dumps({"accuracy": 1 - wrong / len(rows)}))
lines = ["id,y_true,y_pred"] + [f"{i},{y},{p}" for i, (y, p) in enumerate(zip(rows, pred))]
(out / "predictions.csv").write_text("\\n".join(lines) + "\\n")
"""


def _predicting_project(tmp_path: Path, wrong: int) -> Path:
    return _fake_project(tmp_path, PREDICTING_TRAIN, PREDICTING_CONFIG, {"wrong": wrong}, remote=True)


def _set(root: Path, **values: object) -> None:
    params = json.loads((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(json.dumps({**params, **values}))
    run(["git", "commit", "-qam", f"params {values}"], root)


@pytest.mark.slow
def test_a_versions_predictions_outlive_its_job_in_its_release(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """In GitHub Actions without a server, the job that registers a version dies with its
    store; the release keeps the predictions beside the model, and a later pull request on
    a fresh runner is judged against them, paired on the same rows."""
    import hashlib

    from mlci import tags
    from tests.github_helpers import actions_env as _actions_env
    from tests.github_helpers import ci
    from tests.github_helpers import cold_clone as _cold_clone
    from tests.github_helpers import push_payload as _push_payload
    from tests.github_stub import github_stub

    with github_stub() as gh:
        _actions_env(monkeypatch, tmp_path, gh)
        root = _predicting_project(tmp_path, wrong=100)
        run(["git", "checkout", "-q", "-b", "staging"], root)
        head = run(["git", "rev-parse", "HEAD"], root).strip()
        assert ci(cli, root, monkeypatch, "push", _push_payload(tmp_path, "staging", head)).code == 0
        run(["git", "push", "-q", "origin", "staging"], root)
        meta = tags.metadata_from(run(["git", "tag", "-l", "--format=%(contents)", "demo@v0.0.1"], root))
        kept = gh.asset_bytes("demo@v0.0.1", "demo-v0.0.1-predictions.csv")
        assert meta["predictions_asset"] == "demo-v0.0.1-predictions.csv"
        assert meta["predictions"]["sha256"] == hashlib.sha256(kept).hexdigest()
        assert (
            meta["predictions"]["metrics"] == ["accuracy"]
            and meta["predictions"]["name"] == "predictions.csv"
        )
        assert len(meta["predictions"]["rows_sha256"]) == 64

        # A pull request on a fresh runner: v0.0.1's run is in no store here.
        clone = _cold_clone(tmp_path, "staging")
        run(["git", "checkout", "-q", "-b", "worse"], clone)
        _set(clone, wrong=160)  # 3 points worse on the same 2,000 rows
        worse = _gate(cli, clone, "staging")
        regression = _rule(worse, "max_regression")
        assert regression["interval"]["paired"] is True and regression["outcome"] == "fail"
        assert -0.04 < regression["interval"]["low"] < regression["interval"]["high"] < -0.02
        _set(clone, wrong=104)  # 0.2 points worse: within max_regression at 95%, paired
        slightly = _rule(_gate(cli, clone, "staging"), "max_regression")
        assert slightly["outcome"] == "pass" and slightly["interval"]["paired"] is True

        # Bytes that are not the ones registered are not evidence: the rule says it is on points.
        asset = next(a for a in gh.release_by_tag("demo@v0.0.1")["assets"] if a["name"].endswith(".csv"))  # type: ignore[index]
        gh.blobs[f"asset/{asset['id']}"] = kept.replace(b"\n5,", b"\n5,1", 1)
        result = cli("gate", "--env", "staging", "--json", cwd=clone)
        assert "not the predictions that were registered" in result.err, result.err
        tampered = _rule(json.loads(result.out), "max_regression")
        assert "interval" not in tampered and "point value" in tampered["message"], tampered


def test_promotion_judges_on_the_versions_predictions(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The gate at promotion is the pull request's gate: 1.25 points worse is beyond
    max_regression 1% on the point values, but the paired interval reaches both sides
    of it, so staging takes it as inconclusive and production refuses it."""
    root = _predicting_project(tmp_path, wrong=100)
    for step in (("train",), ("register",), ("promote", "staging"), ("promote", "production")):
        assert cli(*step, cwd=root).code == 0, step
    _set(root, wrong=125)
    assert cli("train", cwd=root).code == 0
    assert cli("register", cwd=root).code == 0
    staging = cli("promote", "staging", "--json", cwd=root)
    assert staging.code == 0, staging.err
    (rule,) = [r for r in json.loads(staging.out)["gates"]["rules"] if r["rule"] == "max_regression"]
    assert rule["outcome"] == "inconclusive" and rule["interval"]["paired"] is True
    assert rule["interval"]["low"] < -0.01 < rule["interval"]["high"] < 0
    production = cli("promote", "production", "--json", cwd=root)
    assert production.code == 1, production.err
    data = json.loads(production.out)
    assert data["changed"] is False and data["gates"]["outcome"] == "inconclusive"
    assert "inconclusive" in data["blocked"]


# --------------------------------------------------------------------------- train.repeats


# The same policy, on the mean of five seeds instead of predictions.


def test_repeats_train_once_per_seed_under_one_parent_and_cache_the_group(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.lifecycle import client

    root, log = _repeating_project(tmp_path)
    trained = cli("train", "--json", cwd=root)
    assert trained.code == 0, trained.err
    data = json.loads(trained.out)
    parent = data["run_id"]
    assert data["metrics"]["accuracy"] == pytest.approx(0.9)  # the mean: the offsets sum to 0
    assert "training 5 times (train.repeats, MLCI_SEED 0 to 4)" in trained.err
    assert "accuracy: mean 0.9 over 5 seeds" in trained.err
    seen = [line.split() for line in log.read_text().splitlines()]
    assert [int(s) for s, _ in seen] == [0, 1, 2, 3, 4]
    children = {run_id for _, run_id in seen}
    assert len(children) == 5 and parent not in children  # each repeat logs to its own run

    mlflow = client(root)
    found = mlflow.search_runs(
        [data["experiment_id"]], filter_string=f"tags.`mlci.repeat_of` = '{parent}'", max_results=50
    )
    assert {r.info.run_id for r in found} == children
    assert {r.info.status for r in found} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in found} == {parent}
    assert sorted(r.data.params["mlci_seed"] for r in found) == ["0", "1", "2", "3", "4"]
    assert sorted(round(r.data.metrics["accuracy"], 6) for r in found) == [0.894, 0.899, 0.901, 0.902, 0.904]
    recorded = json.loads(mlflow.get_run(parent).data.tags["mlci.repeats"])
    assert recorded["seeds"] == [0, 1, 2, 3, 4] and len(recorded["metrics"]["accuracy"]) == 5

    again = cli("train", "--json", cwd=root)
    assert json.loads(again.out)["cached"] is True and json.loads(again.out)["run_id"] == parent
    assert len(log.read_text().splitlines()) == 5  # the group is reused: nothing trained again

    # The gate's interval is across the seeds: Student's t on five values.
    gate = _gate(cli, root, "staging")
    (minimum,) = [r for r in gate["rules"] if r["rule"] == "min"]
    assert minimum["outcome"] == "pass" and minimum["interval"]["seeds"] == 5
    assert "across 5 seeds" in minimum["message"]
    assert 0.894 < minimum["interval"]["low"] < 0.9 < minimum["interval"]["high"] < 0.906

    # The version records the repeats: a later job judges against them from the tag alone.
    assert cli("register", cwd=root).code == 0
    from mlci import tags

    meta = tags.metadata_from(run(["git", "tag", "-l", "--format=%(contents)", "demo@v0.0.1"], root))
    assert meta["repeats"] == recorded


@pytest.mark.slow
def test_repeats_gate_changes_paired_by_seed(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, _ = _repeating_project(tmp_path)
    for step in (("train",), ("register",), ("promote", "staging"), ("promote", "production")):
        assert cli(*step, cwd=root).code == 0, step
    # 0.5 points worse on the mean, with other noise per seed: the seeds cannot tell.
    _set(root, accuracy=0.895, shift=1)
    slightly = _rule(_gate(cli, root, "staging"), "max_regression")
    assert slightly["outcome"] == "inconclusive" and slightly["interval"]["paired"] is True
    assert slightly["interval"]["seeds"] == 5 and "95% CI across 5 seeds [" in slightly["message"]
    assert cli("report", "--format", "markdown", "--output", str(tmp_path / "r.md"), cwd=root).code == 0
    assert "interval of the mean over 5 training seeds" in (tmp_path / "r.md").read_text()
    assert cli("report", "--format", "json", "--output", str(tmp_path / "r.json"), cwd=root).code == 0
    head = json.loads((tmp_path / "r.json").read_text())["head"]
    assert head["repeats"]["seeds"] == [0, 1, 2, 3, 4] and head["intervals"]["accuracy"]["seeds"] == 5
    # Promotion judges the same way: staging lets the inconclusive change through, production does not.
    assert cli("train", cwd=root).code == 0 and cli("register", cwd=root).code == 0
    assert cli("promote", "staging", cwd=root).code == 0
    production = cli("promote", "production", "--json", cwd=root)
    assert production.code == 1 and json.loads(production.out)["gates"]["outcome"] == "inconclusive"

    # Three points worse: beyond max_regression 1% across the seeds.
    _set(root, accuracy=0.87, shift=1)
    worse = _rule(_gate(cli, root, "staging"), "max_regression")
    assert worse["outcome"] == "fail" and worse["interval"]["high"] < -0.009


def test_a_failing_repeat_fails_the_run_and_names_the_seed(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.lifecycle import client

    root, log = _repeating_project(tmp_path)
    _set(root, fail_seed=2)
    result = cli("train", cwd=root)
    assert result.code != 0 and "Traceback" not in result.err
    assert "seed 2 diverged" in result.err and "(repeat 3 of 5) and its parent" in result.err
    assert len(log.read_text().splitlines()) == 3  # it stops at the first failure
    mlflow = client(root)
    experiment = mlflow.get_experiment_by_name("demo")
    runs = mlflow.search_runs([experiment.experiment_id], max_results=50)
    statuses = sorted((r.data.tags.get("mlci.seed", "parent"), r.info.status) for r in runs)
    assert statuses == [("0", "FINISHED"), ("1", "FINISHED"), ("2", "FAILED"), ("parent", "FAILED")]


def test_publish_judges_a_forks_repeats_as_data(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The fork's job reports each metric per seed; the trusted job that posts counts
    them only where their mean is the reported value, and judges paired by seed against
    the version in staging, whose repeats its tag records."""
    from tests.github_helpers import TOKEN, ci, pr_event
    from tests.github_helpers import actions_env as _actions_env
    from tests.github_stub import github_stub

    root, _ = _repeating_project(tmp_path, remote=True)
    run(["git", "push", "-q", "origin", "main:staging"], root)
    for step in (("train",), ("register",), ("promote", "staging")):
        assert cli(*step, cwd=root).code == 0, step
    run(["git", "checkout", "-q", "-b", "worse"], root)
    _set(root, accuracy=0.87, shift=1)
    head = run(["git", "rev-parse", "HEAD"], root).strip()
    with github_stub() as gh:
        _actions_env(monkeypatch, tmp_path, gh)
        monkeypatch.delenv("GITHUB_TOKEN")  # the untrusted job
        made = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root))
        assert made.code in (0, 1), made.err
        folder = root / ".mlci"
        data = json.loads((folder / "report.json").read_text())
        assert data["head"]["repeats"]["seeds"] == [0, 1, 2, 3, 4]
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        gh.pulls[12] = head
        assert cli("publish", str(folder), "--head-sha", head, cwd=root).code == 0
        body = gh.comments[12][0]["body"]
        assert "95% CI across 5 seeds" in body and "beyond max_regression 1% at 95%" in body, body
        # Values per seed that do not average to the reported metric are not evidence.
        data["head"]["repeats"]["metrics"]["accuracy"] = [0.95] * 5
        (folder / "report.json").write_text(json.dumps(data))
        assert cli("publish", str(folder), "--head-sha", head, cwd=root).code == 0
        body = gh.comments[12][0]["body"]
        assert "across 5 seeds" not in body and "judged on the point value" in body, body
