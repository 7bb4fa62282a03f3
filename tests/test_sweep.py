"""Sweeps: sweep: in mlci.yaml, the matrix plan, one training per candidate, the
leaderboard from the tracking store or from the matrix jobs' result files, and
applying the best candidate as the params."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlci import config as cfg
from mlci.errors import ConfigError, ExitCode
from tests.lifecycle import commit, project

BASE = "model: {name: m}\ntrain: {command: x}\n"


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        (
            "sweep: {grid: {C: [0.1, 1.0], max_iter: [100, 200]}}",
            [
                {"C": 0.1, "max_iter": 100},
                {"C": 0.1, "max_iter": 200},
                {"C": 1.0, "max_iter": 100},
                {"C": 1.0, "max_iter": 200},
            ],
        ),
        ("sweep: {candidates: [{C: 0.1}, {C: 1.0}, {C: 0.1}]}", [{"C": 0.1}, {"C": 1.0}]),  # deduplicated
        (
            "sweep: {candidates: [{model.depth: 3, name: abc, flag: true}]}",
            [{"model.depth": 3, "name": "abc", "flag": True}],
        ),
        (
            "sweep: {grid: {lr: [1e-5, 0.5]}}",
            [{"lr": 1e-05}, {"lr": 0.5}],
        ),  # YAML 1.1's 1e-5 is a number here
        (
            "sweep: {grid: {C: [1, 2, 3], d: [1, 2]}, limit: 6}",
            [{"C": c, "d": d} for c in (1, 2, 3) for d in (1, 2)],
        ),
    ],
)
def test_sweep_candidates(sweep: str, expected: list[dict[str, Any]]) -> None:
    config = cfg.parse(BASE + sweep + "\n", Path("/p/mlci.yaml"))
    assert config.sweep is not None
    assert [dict(c) for c in config.sweep.candidates] == expected


@pytest.mark.parametrize(
    ("sweep", "problem"),
    [
        (
            "sweep: {grid: {C: [1, 2, 3], d: [1, 2]}, limit: 5}",
            "mlci.yaml:3: sweep: 6 candidates, more than the limit of 5",
        ),
        (
            "sweep: {grid: {C: [1]}, candidates: [{C: 1}]}",
            "write either grid: (every combination) or candidates:",
        ),
        ("sweep: {}", "write either grid:"),
        ("sweep: {grid: {C: []}}", "sweep.grid.C: expected a non-empty list of values"),
        ("sweep: {grid: {C: 1}}", "sweep.grid.C: expected a non-empty list of values, got a number"),
        ("sweep: {candidates: [{C: [1, 2]}]}", "sweep.candidates[0].C: expected a single value"),
        ("sweep: {candidates: [{C: null}]}", "sweep.candidates[0].C: expected a single value"),
        ("sweep: {candidates: [{C: .nan}]}", "sweep.candidates[0].C: expected a finite number"),
        ("sweep: {candidates: [{a..b: 1}]}", "'a..b' is not a param key"),
        ("sweep: {grid: {C: [1]}, limit: 300}", "sweep.limit: expected a whole number from 1 to 256"),
        ("sweep: {grid: {C: [1]}, limt: 3}", "sweep.limt: unknown key; did you mean 'limit'?"),
        ("sweep: [1, 2]", "sweep: expected a mapping with keys grid, candidates, limit"),
    ],
)
def test_bad_sweeps_say_where(sweep: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cfg.parse(BASE + sweep + "\n", Path("/p/mlci.yaml"))
    assert problem in caught.value.message


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sweep", "problem"),
    [
        (
            "sweep:\n  grid:\n" + "".join(f"    k{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for i in range(12)),
            "sweep: 1000000000000 candidates, more than the limit of 20 (10 × 10 × 10",
        ),
        ("sweep: {grid: {C: [" + ", ".join(map(str, range(50_000))) + "]}}", "sweep.grid.C: 50000 values"),
        ("sweep: {candidates: [" + ", ".join(f"{{C: {i}}}" for i in range(5000)) + "]}", "5000 candidates"),
    ],
    ids=["grid-10e12", "long-axis", "long-list"],
)
def test_a_huge_sweep_is_counted_before_it_is_expanded(sweep: str, problem: str) -> None:
    """A 10**12 grid is refused from the product of its axes' lengths: the memory the
    check allocates stays that of the file, not of the candidates."""
    import tracemalloc

    text = BASE + sweep
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as caught:
            cfg.parse(text, Path("/p/mlci.yaml"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problem in caught.value.message
    assert peak < 200 * len(text) + 20_000_000, peak


def test_repeated_grid_values_count_once() -> None:
    config = cfg.parse(BASE + "sweep: {grid: {C: [1, 1, 2, 2]}, limit: 2}\n", Path("/p/mlci.yaml"))
    assert config.sweep is not None and [dict(c) for c in config.sweep.candidates] == [{"C": 1}, {"C": 2}]


SWEEP = "sweep:\n  grid:\n    accuracy: [0.4, 0.93, 0.7]\n"


def _swept(tmp_path: Path) -> Path:
    root = project(tmp_path)
    (root / "mlci.yaml").write_text((root / "mlci.yaml").read_text() + SWEEP)
    commit(root, "a sweep")
    return root


def _ok(cli, root: Path, *args: str) -> Any:  # type: ignore[no-untyped-def]
    result = cli(*args, "--json", cwd=root)
    assert result.code == ExitCode.OK, result.err
    return json.loads(result.out)


def test_plan_train_report_and_apply_on_a_laptop(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _swept(tmp_path)
    plan = cli("sweep", "plan", "--json", cwd=root)
    assert plan.code == ExitCode.OK, plan.err
    assert len(plan.out.strip().splitlines()) == 1  # one line, for $GITHUB_OUTPUT
    matrix = json.loads(plan.out)
    assert [(c["candidate"], c["name"], c["set"]) for c in matrix["include"]] == [
        (1, "accuracy=0.4", ["accuracy=0.4"]),
        (2, "accuracy=0.93", ["accuracy=0.93"]),
        (3, "accuracy=0.7", ["accuracy=0.7"]),
    ]
    fingerprints = [c["fingerprint"] for c in matrix["include"]]
    assert len(set(fingerprints)) == 3
    # Each candidate trains as `mlci train --set ...` does: the same fingerprint.
    assert _ok(cli, root, "fingerprint", "--set", "accuracy=0.93")["fingerprint"] == fingerprints[1]

    first = _ok(cli, root, "sweep", "train", "1")
    assert first["candidate"] == 1 and first["metrics"]["accuracy"] == 0.4 and first["cached"] is False
    assert (
        json.loads((root / ".mlci" / "sweep" / "candidate-1.json").read_text())["run_id"] == first["run_id"]
    )
    assert _ok(cli, root, "sweep", "train", "1")["cached"] is True  # the run cache
    second = _ok(cli, root, "sweep", "train", "2")
    missing = cli("sweep", "train", "4", cwd=root)
    assert missing.code == ExitCode.ERROR and "no sweep candidate 4: mlci.yaml has 3 (1 to 3)" in missing.err

    board = _ok(cli, root, "sweep", "report")
    assert [(r["rank"], r["candidate"], r["value"]) for r in board["rows"]] == [(1, 2, 0.93), (2, 1, 0.4)]
    assert [r["verdict"]["passed"] for r in board["rows"]] == [True, False]  # staging: min 0.5
    assert (
        board["environment"] == "staging" and board["best"] == 2 and board["command"] == "mlci sweep apply 2"
    )
    assert [m["candidate"] for m in board["missing"]] == [3]
    text = cli("sweep", "report", cwd=root).out
    assert "### 🧪 Sweep: 2 candidates by `accuracy` ↑, judged by staging's gate" in text
    assert "| 1 | #2 `accuracy=0.93` ⭐ | 0.9300 | ✅ pass |" in text
    assert "| 2 | #1 `accuracy=0.4` | 0.4000 | ❌ accuracy 0.4 < min 0.5 |" in text
    assert "`mlci sweep apply 2` writes it into `params.yaml`" in text
    assert "_Not trained: #3 `accuracy=0.7`._" in text
    assert "judged by production's gate" in cli("sweep", "report", "--env", "production", cwd=root).out

    applied = _ok(cli, root, "sweep", "apply", "2")
    assert applied["changed"] is True and applied["fingerprint"] == fingerprints[1]
    assert json.loads((root / "params.yaml").read_text())["accuracy"] == 0.93
    commit(root, "the sweep's best candidate")
    # Committed, the params are the candidate's inputs: the pull request reuses its run.
    again = _ok(cli, root, "train")
    assert again["cached"] is True and again["run_id"] == second["run_id"]
    assert _ok(cli, root, "sweep", "apply", "2")["changed"] is False


def test_a_report_from_the_matrix_jobs_files_trusts_only_data(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlci.errors import MlciError
    from mlci.usecases import sweep

    root = _swept(tmp_path)
    results = tmp_path / "downloaded"
    for n in (1, 3):
        _ok(cli, root, "sweep", "train", str(n))
        folder = results / f"mlci-sweep-demo-{n}"  # download-artifact's layout: one folder per artifact
        folder.mkdir(parents=True)
        shutil.copy(root / ".mlci" / "sweep" / f"candidate-{n}.json", folder)
    config = cfg.load(root / "mlci.yaml")
    found = sweep.from_folder(results, config)
    assert [(r.candidate.number, r.trained) for r in found] == [(1, True), (2, False), (3, True)]
    board = sweep.leaderboard(config, found, None, "staging")
    assert [r.result.candidate.number for r in board.rows] == [3, 1] and board.best is not None
    assert board.best.result.candidate.number == 3

    forged = results / "mlci-sweep-demo-3" / "candidate-3.json"
    good = json.loads(forged.read_text())
    for change, problem in [
        ({"params": {"accuracy": 0.99}}, "its params are not candidate 3's (accuracy=0.7)"),
        ({"candidate": 9}, "names no candidate of the plan (1 to 3): 9"),
        ({"metrics": {"accuracy": "high"}}, "accuracy"),
        ({"run_id": "../../etc"}, "run_id is not a plain id"),
        ({"fingerprint": "x"}, "fingerprint is not 64 hex digits"),
    ]:
        forged.write_text(json.dumps({**good, **change}))
        with pytest.raises(MlciError) as caught:
            sweep.from_folder(results, config)
        assert problem in caught.value.message and "candidate-3.json" in caught.value.message
    forged.write_text(json.dumps({**good, "run_url": "javascript:alert(1)"}))
    assert sweep.from_folder(results, config)[2].run_url is None  # not a link anyone follows
    (results / "again").mkdir()
    shutil.copy(results / "mlci-sweep-demo-1" / "candidate-1.json", results / "again")
    with pytest.raises(MlciError, match="a second result for candidate 1"):
        sweep.from_folder(results, config)


def test_a_bad_key_fails_the_plan_not_the_matrix(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = project(tmp_path)
    (root / "mlci.yaml").write_text(
        (root / "mlci.yaml").read_text() + "sweep:\n  candidates:\n    - {acuracy: 0.5}\n"
    )
    result = cli("sweep", "plan", "--json", cwd=root)
    assert result.code == ExitCode.ERROR
    assert "sweep candidate 1 (acuracy=0.5):" in result.err and "acuracy" in result.err
    assert "Traceback" not in result.err
    (root / "mlci.yaml").write_text((root / "mlci.yaml").read_text().split("sweep:")[0])
    none = cli("sweep", "plan", cwd=root)
    assert none.code == ExitCode.ERROR and "no sweep: section" in none.err and "hint:" in none.err
