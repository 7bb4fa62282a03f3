"""The intervals memo (``evidence.Memo``): a report on a cache hit reads its intervals
back instead of parsing predictions and bootstrapping again; an entry is data (bounded,
each field checked), a changed input is a miss, and GitHub Actions never reads one."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from mlci import evidence, stats


def _predictions(path: Path, flip: int = 0) -> tuple[Path, str]:
    rows = ["id,y_true,y_pred"]
    for i in range(200):
        truth = i % 2
        guess = truth if (i % 7 and i >= flip) else 1 - truth
        rows.append(f"{i},{truth},{guess}")
    path.write_text("\n".join(rows) + "\n")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _run(path: Path, sha256: str | None, said: list[str]) -> evidence.RunPredictions:
    return evidence.RunPredictions("r1", path, frozenset({"accuracy"}), sha256=sha256, log=said.append)


@pytest.fixture
def memo(tmp_path: Path) -> evidence.Memo:
    return evidence.Memo({"MLCI_CACHE_DIR": str(tmp_path / "cache")})


def test_a_second_report_reads_its_intervals_without_parsing(tmp_path: Path, memo: evidence.Memo) -> None:
    head_file, head_sha = _predictions(tmp_path / "head.csv")
    base_file, base_sha = _predictions(tmp_path / "base.csv", flip=40)
    said: list[str] = []
    first = evidence.RunEvidence(_run(head_file, head_sha, said), _run(base_file, base_sha, said), memo)
    interval, difference = first.interval("accuracy", 0.95), first.difference("accuracy", 0.95)
    assert interval is not None and difference is not None and difference.paired
    again = evidence.RunEvidence(_run(head_file, head_sha, said), _run(base_file, base_sha, said), memo)
    assert again.interval("accuracy", 0.95) == interval
    assert again.difference("accuracy", 0.95) == difference
    assert again.head is not None and again.head._parsed is None  # never parsed
    assert again.base is not None and again.base._parsed is None
    # Another confidence is another entry: computed, and parsed for it.
    wider = again.interval("accuracy", 0.99)
    assert wider is not None and wider.low <= interval.low and again.head._parsed is not None
    assert not said


def test_what_decides_an_interval_is_in_its_key(tmp_path: Path, memo: evidence.Memo) -> None:
    head_file, head_sha = _predictions(tmp_path / "head.csv")
    other_file, other_sha = _predictions(tmp_path / "other.csv", flip=60)
    said: list[str] = []
    found = evidence.RunEvidence(_run(head_file, head_sha, said), None, memo).interval("accuracy", 0.95)
    other = evidence.RunEvidence(_run(other_file, other_sha, said), None, memo).interval("accuracy", 0.95)
    assert found is not None and other is not None and found.value != other.value
    # The same bytes under another suffix are not the same file to the parser.
    assert (
        _run(head_file, head_sha, said).key
        != evidence.RunPredictions(
            "r1", head_file.with_suffix(".parquet"), frozenset({"accuracy"}), sha256=head_sha
        ).key
    )
    # No recorded sha256: nothing to key on, so no memo (and it still answers).
    unkeyed = evidence.RunEvidence(_run(head_file, None, said), None, memo)
    assert unkeyed.head is not None and unkeyed.head.key is None
    assert unkeyed.interval("accuracy", 0.95) == found


@pytest.mark.parametrize(
    "entry",
    [
        b"not json",
        b"[]",
        b'{"f1": null}',  # another metric than asked
        b'{"accuracy": [0.9, 0.8, 0.95, 2000]}',  # a field short
        b'{"accuracy": [true, 0.8, 0.95, 2000, false]}',
        b'{"accuracy": [0.9, 0.95, 0.8, 2000, false]}',  # low above high
        b'{"accuracy": [0.9, NaN, 0.95, 2000, false]}',  # half an interval
        b'{"accuracy": [0.9, 0.8, 0.95, "2000", false]}',
        b'{"accuracy": [0.9, 0.8, 0.95, 2000, 0]}',
        b'{"accuracy": [0.9, 0.8, 0.95, 2000, false]}' + b" " * (64 * 1024),  # past its bound
    ],
)
def test_an_entry_that_does_not_read_is_computed_again(
    tmp_path: Path, memo: evidence.Memo, entry: bytes
) -> None:
    head_file, head_sha = _predictions(tmp_path / "head.csv")
    said: list[str] = []
    truth = evidence.RunEvidence(_run(head_file, head_sha, said), None, memo).interval("accuracy", 0.95)
    (kept,) = (tmp_path / "cache" / "intervals").iterdir()
    kept.write_bytes(entry)
    again = evidence.RunEvidence(_run(head_file, head_sha, said), None, memo)
    assert again.interval("accuracy", 0.95) == truth
    assert again.head is not None and again.head._parsed is not None  # computed, not read
    assert json.loads(kept.read_text())["accuracy"][0] == truth.value  # and kept right again


def test_a_well_formed_entry_is_what_a_report_shows(tmp_path: Path, memo: evidence.Memo) -> None:
    """Guard against a memo that is never read: an entry written by hand is believed."""
    head_file, head_sha = _predictions(tmp_path / "head.csv")
    said: list[str] = []
    evidence.RunEvidence(_run(head_file, head_sha, said), None, memo).interval("accuracy", 0.95)
    (kept,) = (tmp_path / "cache" / "intervals").iterdir()
    kept.write_text('{"accuracy": [0.5, NaN, NaN, 2000, false]}')
    found = evidence.RunEvidence(_run(head_file, head_sha, said), None, memo).interval("accuracy", 0.95)
    assert found is not None and found.value == 0.5 and math.isnan(found.low) and found.confidence == 0.95


def test_github_actions_never_reads_or_writes_the_memo(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    head_file, head_sha = _predictions(tmp_path / "head.csv")
    said: list[str] = []
    for environ in ({"GITHUB_ACTIONS": "true"}, {"MLCI_NO_MEMO": "1"}):
        off = evidence.Memo({**environ, "MLCI_CACHE_DIR": str(cache)})
        run = _run(head_file, head_sha, said)
        assert evidence.RunEvidence(run, None, off).interval("accuracy", 0.95) is not None
        assert run._parsed is not None and not cache.exists()


def test_predictions_that_do_not_parse_give_no_interval_and_no_entry(
    tmp_path: Path, memo: evidence.Memo
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,y_true\n1,1\n")
    said: list[str] = []
    run = evidence.RunPredictions(
        "r9",
        bad,
        frozenset({"accuracy"}),
        sha256=hashlib.sha256(bad.read_bytes()).hexdigest(),
        log=said.append,
    )
    assert evidence.RunEvidence(run, None, memo).interval("accuracy", 0.95) is None
    assert len(said) == 1 and said[0].startswith("no intervals from run r9's predictions:")
    assert not (tmp_path / "cache").exists()


def test_a_memo_entry_equals_the_bootstrap(tmp_path: Path) -> None:
    head_file, head_sha = _predictions(tmp_path / "head.csv")
    direct = stats.intervals(stats.read_predictions(head_file, where="test"), ["accuracy"])["accuracy"]
    said: list[str] = []
    memo = evidence.Memo({"MLCI_CACHE_DIR": str(tmp_path / "cache")})
    evidence.RunEvidence(_run(head_file, head_sha, said), None, memo).interval("accuracy", 0.95)
    assert (
        evidence.RunEvidence(_run(head_file, head_sha, said), None, memo).interval("accuracy", 0.95) == direct
    )
