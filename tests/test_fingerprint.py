from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlci import config as cfg
from mlci import fingerprint as fp
from tests.helpers import run

CONFIG = """\
model:
  name: m
train:
  command: python train.py
  inputs: [train.py, "data/**", "*.yaml"]
  params: params.yaml
  metrics: metrics.json
  model: model
"""


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("train.py", "train.py", True),
        ("train.py", "src/train.py", False),  # a glob, not a gitignore pattern
        ("*.py", "train.py", True),
        ("*.py", "src/train.py", False),
        ("**/*.py", "train.py", True),
        ("**/*.py", "src/a/b/train.py", True),
        ("src/**/*.py", "src/train.py", True),
        ("src/**/*.py", "src/a/train.py", True),
        ("src/**/*.py", "lib/a/train.py", False),
        ("data/**", "data/a.csv", True),
        ("data/**", "data/x/y/a.csv", True),
        ("data/**", "database.csv", False),
        ("data", "data/a.csv", True),  # a folder means everything in it
        ("data/", "data/x/a.csv", True),
        ("./train.py", "train.py", True),
        ("data/*.csv", "data/a.csv", True),
        ("data/*.csv", "data/a.csv.bak", False),
        ("data/?.csv", "data/a.csv", True),
        ("data/?.csv", "data/ab.csv", False),
        ("data/[ab].csv", "data/b.csv", True),
        ("data/[!ab].csv", "data/b.csv", False),
        ("data/[!ab].csv", "data/c.csv", True),
        ("a+b.py", "a+b.py", True),
        ("a+b.py", "aab.py", False),
        ("**", "anything/at/all", True),
    ],
)
def test_glob(pattern: str, path: str, matches: bool) -> None:
    assert bool(fp.glob_regex(pattern).fullmatch(path)) is matches


def test_select_excludes_outputs_and_reports_unmatched() -> None:
    files = [
        "train.py",
        "params.yaml",
        ".mlci/statcache.json",
        "model/x.py",
        "metrics.json",
        "a.py",
    ]
    chosen, unmatched = fp.select(
        files,
        ["*.py", "**/*.json", "params.yaml", "nothing/**"],
        [".mlci", "model", "metrics.json"],
    )
    assert chosen == ["a.py", "params.yaml", "train.py"]
    assert unmatched == ["**/*.json", "nothing/**"]


def _project(tmp_path: Path, git: bool = True) -> cfg.Config:
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    (root / "mlci.yaml").write_text(CONFIG)
    (root / "train.py").write_text("print('train')\n")
    (root / "params.yaml").write_text("C: 1\n")
    (root / "data" / "a.csv").write_text("1,2\n")
    (root / "data" / "ignored.tmp").write_text("scratch\n")
    (root / ".gitignore").write_text("*.tmp\n.mlci/\n")
    (root / "metrics.json").write_text("{}")  # an output, never an input
    if git:
        run(["git", "init", "-q"], root)
    return cfg.load(root / "mlci.yaml")


@pytest.mark.parametrize("git", [True, False], ids=["git", "plain-folder"])
def test_inputs_exclude_ignored_files_state_and_outputs(tmp_path: Path, git: bool) -> None:
    config = _project(tmp_path, git)
    (config.root / ".mlci").mkdir()
    (config.root / ".mlci" / "x.yaml").write_text("state")
    result = fp.compute(config, {"C": 1})
    assert sorted(result.files) == ["data/a.csv", "mlci.yaml", "params.yaml", "train.py"]
    assert result.unmatched == ()
    assert len(result.digest) == 64


def test_git_and_plain_folder_agree(tmp_path: Path) -> None:
    with_git = fp.compute(_project(tmp_path / "a", git=True), {"C": 1})
    without = fp.compute(_project(tmp_path / "b", git=False), {"C": 1})
    assert with_git.digest == without.digest


def test_the_fingerprint_of_the_same_inputs_never_moves(tmp_path: Path) -> None:
    """Every run cache in use is keyed by it: a change to how it is computed (however
    fast) that changes its value makes every project train again."""
    result = fp.compute(_project(tmp_path, git=False), {"C": 1})
    assert result.digest == "1f263e3cd547160207811a48acdd2dd9c420b7a994635e210b63b9df3f5aa5ee"


def test_what_changes_the_fingerprint(tmp_path: Path) -> None:
    config = _project(tmp_path)
    base = fp.compute(config, {"C": 1}).digest
    assert fp.compute(config, {"C": 1}).digest == base  # stable
    assert fp.compute(config, {"C": 2}).digest != base  # params
    (config.root / "data" / "ignored.tmp").write_text("changed")
    (config.root / "notes.md").write_text("not an input")
    assert fp.compute(config, {"C": 1}).digest == base  # ignored and unlisted files
    (config.root / "data" / "a.csv").write_text("1,3\n")
    changed = fp.compute(config, {"C": 1}).digest
    assert changed != base  # content
    (config.root / "data" / "b.csv").write_text("new\n")
    assert fp.compute(config, {"C": 1}).digest != changed  # a new input file
    other = cfg.parse(CONFIG.replace("python train.py", "python train.py --fast"), config.path)
    assert fp.compute(other, {"C": 1}).digest != fp.compute(config, {"C": 1}).digest  # command
    moved = cfg.parse(CONFIG.replace("metrics: metrics.json", "metrics: out.json"), config.path)
    assert fp.compute(moved, {"C": 1}).digest != fp.compute(config, {"C": 1}).digest  # train section
    once = cfg.parse(
        CONFIG.replace("metrics: metrics.json", "metrics: metrics.json\n  repeats: 1"), config.path
    )
    assert fp.compute(once, {"C": 1}).digest == fp.compute(config, {"C": 1}).digest  # the default, said
    five = cfg.parse(
        CONFIG.replace("metrics: metrics.json", "metrics: metrics.json\n  repeats: 5"), config.path
    )
    assert fp.compute(five, {"C": 1}).digest != fp.compute(config, {"C": 1}).digest  # repeats: another result


def test_stat_cache_rereads_only_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _project(tmp_path)
    old = 1_600_000_000_000_000_000  # files older than the racy window
    for path in config.root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            os.utime(path, ns=(old, old))
    reads: list[str] = []
    real = fp._sha256

    def counting(path: Path) -> str:
        reads.append(path.relative_to(config.root).as_posix())
        return real(path)

    monkeypatch.setattr(fp, "_sha256", counting)
    first = fp.compute(config, {})
    assert sorted(reads) == ["data/a.csv", "mlci.yaml", "params.yaml", "train.py"]
    assert (config.root / ".mlci" / "statcache.json").is_file()

    reads.clear()
    assert fp.compute(config, {}).digest == first.digest
    assert reads == []  # everything from the stat cache

    (config.root / "train.py").write_text("print('v2')\n")  # fresh mtime: racy, not cached
    reads.clear()
    second = fp.compute(config, {})
    assert reads == ["train.py"]
    assert second.digest != first.digest
    reads.clear()
    fp.compute(config, {})
    assert reads == ["train.py"]  # still within the racy window: read again, never trusted

    reads.clear()
    assert fp.compute(config, {}, use_stat_cache=False).digest == second.digest
    assert len(reads) == 4


def test_damaged_stat_cache_is_ignored(tmp_path: Path) -> None:
    config = _project(tmp_path)
    digest = fp.compute(config, {}).digest
    (config.root / ".mlci").mkdir(exist_ok=True)
    (config.root / ".mlci" / "statcache.json").write_text("{not json")
    assert fp.compute(config, {}).digest == digest


def test_fingerprint_command(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    config = _project(tmp_path)
    result = cli("fingerprint", cwd=config.root)
    assert result.code == 0, result.err
    digest = result.out.strip()
    assert len(digest) == 64
    assert cli("fingerprint", cwd=config.root / "data").out.strip() == digest  # from a subfolder
    detail = json.loads(cli("fingerprint", "--json", cwd=config.root).out)
    assert detail["fingerprint"] == digest
    assert set(detail["files"]) == {"data/a.csv", "mlci.yaml", "params.yaml", "train.py"}
    assert detail["params"] == {"C": 1}
    overridden = cli("fingerprint", "--set", "C=2", cwd=config.root).out.strip()
    assert overridden != digest
    unmatched = cfg.CONFIG_FILE
    (config.root / unmatched).write_text(CONFIG.replace('"*.yaml"', '"*.yaml", "missing/**"'))
    warned = cli("fingerprint", cwd=config.root)
    assert "train.inputs pattern 'missing/**' matches no file" in warned.err


def _committed(tmp_path: Path) -> cfg.Config:
    config = _project(tmp_path)
    (config.root / "data" / "b.csv").write_text("3,4\n")
    (config.root / "data" / "old.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: old\n"
    )
    run(["git", "add", "-A"], config.root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "inputs"], config.root)
    return config


def test_a_tracked_file_deleted_from_the_work_tree_is_no_input(tmp_path: Path) -> None:
    """The work tree decides: a deleted file (and a deleted DVC record, which is then not
    read) fingerprints as if `git rm` had removed it, and a pattern that named only it
    names nothing now."""
    config = _committed(tmp_path / "deleted")
    (config.root / "data" / "b.csv").unlink()
    (config.root / "data" / "old.dvc").unlink()
    (config.root / "train.py").unlink()
    found = fp.compute(config, {"C": 1})
    removed = _committed(tmp_path / "removed")
    run(["git", "rm", "-q", "data/b.csv", "data/old.dvc", "train.py"], removed.root)
    assert found.digest == fp.compute(removed, {"C": 1}).digest
    assert "data/b.csv" not in found.files and "train.py" not in found.files and not found.dvc
    assert found.unmatched == ("train.py",)


def test_a_dangling_link_among_the_inputs_is_still_an_error(tmp_path: Path) -> None:
    from mlci.errors import MlciError

    config = _committed(tmp_path)
    (config.root / "data" / "b.csv").unlink()
    (config.root / "data" / "b.csv").symlink_to("nowhere.csv")
    with pytest.raises(MlciError, match="cannot read input file"):
        fp.compute(config, {"C": 1})


def test_a_fingerprint_asks_git_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One `git ls-files` whatever the number of files: finding deleted files with a
    second call stats every file again (40 ms of 55 at 10,000 files)."""
    from mlci import gitrepo

    config = _committed(tmp_path)
    calls: list[list[str]] = []
    real = gitrepo.run_git

    def counted(args, cwd, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(args))
        return real(args, cwd, **kwargs)

    monkeypatch.setattr(gitrepo, "run_git", counted)
    fp.compute(config, {"C": 1})
    assert [c[0] for c in calls] == ["ls-files"]
