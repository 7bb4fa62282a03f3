"""Declared datasets (``data:`` in mlci.yaml): found, checked, profiled, compared.

- ``locate`` finds a dataset's files (a path or a glob), or, for data DVC tracks
  and this checkout does not have, the hash DVC recorded ("not present locally":
  reported, never an error).
- ``check`` validates the rows against the declared checks (types, nulls, ranges,
  allowed values, a unique key, row counts), each one vectorised pandas pass;
  every failure names the dataset, the column, the rule and the numbers.
- ``profile`` summarises each column in a few kilobytes (type, nulls, min, max,
  mean, percentiles, a histogram, top values), stored with the run and with the
  version, so a later comparison needs the two profiles and never the data.
- ``diff`` compares two profiles: rows, columns added, removed and retyped, and
  a drift score per column, the population stability index (PSI):

      PSI = sum over bins of (head% - base%) * ln(head% / base%)

  over the baseline's ten decile bins for a numeric column (each profile's share
  of a bin read from its percentiles) and over the values for a column of at most
  ``CATEGORIES`` values (the rest pooled as "other"); shares are floored at 0.01%.
  0.1 is commonly read as a small shift and 0.25 as a large one.

pandas and pyarrow are imported only here, and only when a data command runs
(``pip install 'mlci[data]'``). pandera did the checking until its import (0.3 s)
and validation (0.8 s of a 1M-row check) cost more than the rules it ran.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import itertools
import math
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import dvc
from mlci.config import Config, Dataset
from mlci.errors import ExitCode, MlciError

if TYPE_CHECKING:
    import pandas as pd

PROFILE_FORMAT = 1
PROFILE_FILE = "data-profile.json"  # the run's artifact: every dataset's profile
CATEGORIES = 20  # a column with at most this many values is compared value by value
PERCENTILES = 101  # 0%, 1%, ..., 100%
BINS = 20  # histogram bins
_FLOOR = 1e-4
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_INSTALL = "pip install 'mlci[data]' (pandas and pyarrow)"


class DataError(MlciError):
    """A dataset that cannot be read."""


class DataCheckFailed(MlciError):
    """A dataset broke its checks: exits 1, like a failed gate."""

    exit_code = ExitCode.GATE_FAILED


_preloading: threading.Thread | None = None


def preload() -> None:
    """Import pandas in the background (0.5-0.8 s), for a process that will check data
    after other work it can overlap with (the demo scaffolds and pushes first).
    ``libraries`` waits for it: two threads never import pandas at once."""
    global _preloading
    if _preloading is None and "pandas" not in sys.modules:

        def work() -> None:
            with suppress(ImportError):
                import pandas  # noqa: F401

        _preloading = threading.Thread(target=work, name="mlci-pandas", daemon=True)
        _preloading.start()


def libraries() -> Any:
    """pandas (and pyarrow, for Parquet), or a clear error saying how to install them."""
    if _preloading is not None:
        _preloading.join()
    try:
        import pandas
    except ImportError as exc:
        raise MlciError(
            f"mlci.yaml declares datasets (data:), and checking them needs {exc.name}",
            hint=_INSTALL,
        ) from None
    return pandas


# --------------------------------------------------------------------------- where


@dataclass(frozen=True)
class Located:
    dataset: Dataset
    files: tuple[Path, ...]  # present, sorted; empty when DVC tracks it and it is not here
    root: Path
    dvc: dvc.Tracked | None = None  # DVC's record, where DVC tracks the data

    @property
    def present(self) -> bool:
        return bool(self.files)

    def digest(self) -> str:
        """sha256 over the files' names and contents; DVC's recorded hash where the data is not
        here. Read once: reusing a run's checks and profiling the data both ask for it."""
        known = self.__dict__.get("_digest")
        if known is not None:
            return str(known)
        if not self.files:
            assert self.dvc is not None
            found = f"dvc:{self.dvc.hash}"
        else:
            h = hashlib.sha256()
            for path in self.files:
                h.update(f"{path.relative_to(self.root).as_posix()}\n".encode())
                with path.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        h.update(chunk)
            found = h.hexdigest()
        object.__setattr__(self, "_digest", found)  # frozen: set once, as tags.Event.metadata is
        return found


def _dvc_record(root: Path, pattern: str) -> dvc.Tracked | None:
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        folder = Path(dirpath).relative_to(root)
        names += [(folder / f).as_posix() for f in filenames if dvc.is_record(f)]

    def text_of(name: str) -> str | None:
        return (root / name).read_text(encoding="utf-8")

    tracked = dvc.parse(names, text_of)
    fixed = pattern.strip().removeprefix("./")
    return tracked.get(fixed) or next((t for t in tracked.values() if dvc.covers(t.path, fixed)), None)


def locate(config: Config, dataset: Dataset) -> Located:
    root = config.root
    pattern = dataset.path
    if any(c in pattern for c in "*?["):
        found = [Path(p) for p in globlib.glob(str(root / pattern), recursive=True)]
    else:
        found = [root / pattern]
    files = sorted(p for p in found if p.is_file() and not dvc.is_record(p.name))
    if files:
        return Located(dataset, tuple(files), root)
    record = _dvc_record(root, pattern)
    if record is not None:
        return Located(dataset, (), root, record)
    raise DataError(
        f"data.{dataset.name}: no file matches {pattern!r} in {root}",
        hint="fix data.<name>.path in mlci.yaml (relative to it), or commit the data "
        "(or track it with DVC and `dvc pull` it)",
    )


def _format(dataset: Dataset, path: Path) -> str:
    if dataset.format:
        return dataset.format
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"data.{dataset.name}: cannot tell the format of {path.name}",
            hint="name files .csv, .parquet or .jsonl, or set data.<name>.format",
        )
    return found


# Columns of one dataset: each is profiled (about 2 ms apiece on a 2-core machine, so the
# bound is about 10 s), and a profile travels in run bundles and releases.
MAX_DATA_COLUMNS = 5_000


def read(located: Located) -> pd.DataFrame:
    """The dataset's rows (its files one after another), with pandas' nullable types."""
    pandas = libraries()
    frames = []
    for path in located.files:
        fmt = _format(located.dataset, path)
        try:
            if fmt == "csv":
                frame = _read_csv(pandas, path)
            elif fmt == "parquet":
                frame = pandas.read_parquet(path, dtype_backend="numpy_nullable")
            else:
                frame = pandas.read_json(path, lines=True, dtype_backend="numpy_nullable")
        except (ValueError, OSError, UnicodeDecodeError, ImportError) as exc:
            raise DataError(
                f"data.{located.dataset.name}: cannot read {path.relative_to(located.root)} as {fmt}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
                hint="check the file, or set data.<name>.format",
            ) from None
        if len(frame.columns) > MAX_DATA_COLUMNS:
            raise DataError(
                f"data.{located.dataset.name}: {path.relative_to(located.root)} has {len(frame.columns):,} "
                f"columns, more than mlci checks and profiles in one dataset ({MAX_DATA_COLUMNS:,})",
                hint="declare the columns that feed the model as a dataset of their own (a narrower file)",
            )
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pandas.concat(frames, ignore_index=True)


def _read_csv(pandas: Any, path: Path) -> pd.DataFrame:
    """``read_csv(path, dtype_backend="numpy_nullable")``, column for column, in half its CPU:
    read with numpy's types, then each column cast to its nullable type, except the few
    whose text alone tells the type (whole numbers with gaps: "1" is Int64, "1.0" Float64;
    cells that are not all strings), which are read again that way."""
    import numpy as np

    frame = pandas.read_csv(path)
    if frame.empty or frame.columns.duplicated().any():
        return pandas.read_csv(path, dtype_backend="numpy_nullable")
    out: dict[Any, Any] = {}
    again = []
    for name in frame.columns:
        series = frame[name]
        kind = series.dtype.kind
        if kind in "iub":
            out[name] = series.astype({"i": "Int64", "u": "UInt64", "b": "boolean"}[kind])
        elif kind == "f":
            values = series.to_numpy()
            gaps = np.isnan(values)
            with np.errstate(all="ignore"):
                whole = bool(gaps.any()) and bool(np.all(values[~gaps] == np.trunc(values[~gaps])))
            if whole:
                again.append(name)
            else:
                out[name] = series.astype("Float64")
        elif kind == "O" and pandas.api.types.infer_dtype(series, skipna=True) == "string":
            out[name] = series.astype("string")
        else:
            again.append(name)
    if again:
        extra = pandas.read_csv(path, usecols=again, dtype_backend="numpy_nullable")
        out.update({name: extra[name] for name in again})
    return pandas.DataFrame(out, columns=frame.columns)


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Problem:
    dataset: str
    column: str | None
    rule: str  # "type", "nulls", "min", "max", "allowed", "key", "rows", "required", "drift"
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "column": self.column, "rule": self.rule, "message": self.message}


_DTYPES = {
    "int": "Int64",
    "float": "Float64",
    "number": "Float64",
    "bool": "boolean",
    "datetime": "datetime64[ns]",
    "str": "string",
}


def _scalar_of(value: Any) -> Any:
    """A numpy scalar as Python's; anything else (a list or struct cell, an array) as it is."""
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        try:
            return value.item()
        except (ValueError, TypeError):
            return value
    return value


def _examples(values: Sequence[Any]) -> str:
    shown = []
    for value in values:
        text = repr(_scalar_of(value))
        if text not in shown:
            shown.append(text[:40])
        if len(shown) == 3:
            break
    return ", ".join(shown)


def _cell_nested(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict, set)) or hasattr(value, "shape")


def _nested(series: pd.Series) -> bool:
    """Cells that are lists, structs or arrays (Parquet's nested types, JSON's objects)."""
    if series.dtype != object:
        return False
    return bool(series.map(_cell_nested).any())


def check(dataset: Dataset, frame: pd.DataFrame) -> list[Problem]:
    """Every way the rows break the dataset's checks (none: they pass): for each declared
    column in order, its presence, type, nulls, min, max and allowed values; then the
    key, the share of nulls and the row count. Plain pandas: each rule is one vectorised
    pass over its column."""
    name = dataset.name
    problems: list[Problem] = []
    rows = len(frame)
    missing = [spec.name for spec in dataset.columns if spec.name not in frame.columns]
    missing += [c for c in dataset.key if c not in frame.columns and c not in missing]
    if missing:
        problems.append(
            Problem(
                name,
                None,
                "required",
                f"data.{name}: no column {', '.join(repr(c) for c in missing)} (declared under columns)",
            )
        )
    for spec in dataset.columns:
        if spec.name in frame.columns:
            problems += _column_problems(name, spec, frame[spec.name], rows)
    problems += _key_problems(name, dataset.key, frame)
    for spec in dataset.columns:  # a share of nulls: the numbers are ours
        if spec.nulls and spec.name in frame.columns and rows:
            share = float(frame[spec.name].isna().mean())
            if share > spec.nulls:
                problems.append(
                    Problem(
                        name,
                        spec.name,
                        "nulls",
                        f"data.{name}: column {spec.name!r}: {share:.2%} of rows are null, "
                        f"more than nulls {spec.nulls:.2%}",
                    )
                )
    if dataset.rows_min is not None and rows < dataset.rows_min:
        problems.append(
            Problem(name, None, "rows", f"data.{name}: {rows} rows, fewer than rows.min {dataset.rows_min}")
        )
    if dataset.rows_max is not None and rows > dataset.rows_max:
        problems.append(
            Problem(name, None, "rows", f"data.{name}: {rows} rows, more than rows.max {dataset.rows_max}")
        )
    return problems


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _failing(
    name: str, column: str, rule: str, failed: pd.Series, values: pd.Series, words: str, rows: int
) -> list[Problem]:
    """One problem for the rows where ``failed`` holds (none when it holds nowhere)."""
    count = int(failed.sum())
    if not count:
        return []
    share = f" ({count / rows:.2%} of rows)" if rows and rule not in ("type", "nulls") else ""
    examples = f" (e.g. {_examples(values[failed].head(50).tolist())})" if rule != "nulls" else ""
    where = f"data.{name}: column {column!r}"
    return [Problem(name, column, rule, f"{where}: {_plural(count, 'value')} {words}{share}{examples}")]


def _coerced(series: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """The column as ``kind`` (NA where a value is not one), and where a value failed."""
    import pandas as pd
    import pandas.api.types as t

    present = series.notna()
    if kind == "str":
        return series, present & False
    flat = series.map(lambda v: None if _cell_nested(v) else v) if _nested(series) else series
    if kind == "datetime":
        if t.is_datetime64_any_dtype(flat):
            return flat, present & False
        out = pd.to_datetime(flat.astype("string"), errors="coerce", utc=False, format="mixed")
        return out, present & out.isna()
    if kind == "bool":
        if t.is_bool_dtype(flat):
            return flat, present & False
        words = flat.astype("string").str.strip().str.lower()
        truth = words.map({"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False})
        return truth.astype("boolean"), present & truth.isna()
    # int, float, number
    if t.is_bool_dtype(flat):
        numbers = flat.astype("Float64")
    elif t.is_numeric_dtype(flat):
        numbers = flat
    else:
        numbers = pd.to_numeric(flat.astype("string").str.strip(), errors="coerce")
    numbers = numbers.astype("Float64") if not t.is_integer_dtype(numbers) else numbers
    failed = present & numbers.isna()
    if kind == "int" and not t.is_integer_dtype(numbers):
        with _quiet():
            whole = (numbers == numbers.round()).fillna(True) & numbers.abs().lt(2.0**63).fillna(True)
        failed |= ~whole.astype(bool)
        numbers = numbers.where(~failed)
    return numbers, failed


def _quiet() -> Any:
    import numpy as np

    return np.errstate(all="ignore")


def _column_problems(name: str, spec: Any, series: pd.Series, rows: int) -> list[Problem]:
    import pandas as pd
    import pandas.api.types as t

    problems: list[Problem] = []
    values = series
    if spec.type is not None:
        values, failed = _coerced(series, spec.type)
        words = f"not of type {_words(_DTYPES[spec.type])}"
        problems += _failing(name, spec.name, "type", failed, series, words, rows)
    if spec.nulls == 0:
        nulls = int(series.isna().sum())
        if nulls:
            problems.append(
                Problem(
                    name,
                    spec.name,
                    "nulls",
                    f"data.{name}: column {spec.name!r}: {_plural(nulls, 'null value')}, and nulls is 0",
                )
            )
    if spec.min is not None or spec.max is not None:
        numbers = values if t.is_numeric_dtype(values) and not t.is_bool_dtype(values) else None
        if numbers is None:
            numbers, _ = _coerced(series, "number")
        # A value that is not of the declared type is said once, under type; without a
        # type, a value that is not a number is outside any bound.
        present = numbers.notna() if spec.type is not None else series.notna()
        for rule, bound in (("min", spec.min), ("max", spec.max)):
            if bound is None:
                continue
            with _quiet():
                inside = (numbers >= bound) if rule == "min" else (numbers <= bound)
            failed = present & ~inside.fillna(False).astype(bool)
            words = f"below min {bound:g}" if rule == "min" else f"above max {bound:g}"
            problems += _failing(name, spec.name, rule, failed, series, words, rows)
    if spec.allowed is not None:
        allowed = list(spec.allowed)
        if _nested(series):
            kept = set(_hashable(v) for v in allowed)
            inside = series.map(lambda v: _hashable(v) in kept)
        else:
            inside = series.isin(allowed)
        failed = series.notna() & ~pd.Series(inside, index=series.index).fillna(False).astype(bool)
        words = f"not one of {', '.join(repr(v) for v in spec.allowed)}"
        problems += _failing(name, spec.name, "allowed", failed, series, words, rows)
    return problems


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return ("unhashable", repr(value))
    return value


def _key_problems(name: str, key: Sequence[str], frame: pd.DataFrame) -> list[Problem]:
    columns = [c for c in key if c in frame.columns]
    if not columns or len(columns) != len(key):
        return []
    nested = [c for c in columns if _nested(frame[c])]
    if nested:  # a key over nested values cannot be checked (they cannot be hashed): said, not crashed
        return [
            Problem(
                name,
                column,
                "key",
                f"data.{name}: column {column!r} holds lists or structs, which a key cannot be made of",
            )
            for column in nested
        ]
    repeated = frame.duplicated(subset=columns, keep=False)
    count = int(repeated.sum())
    if not count:
        return []
    column = columns[0] if len(columns) == 1 else None
    where = f"data.{name}: column {column!r}" if column else f"data.{name}"
    shown = frame.loc[repeated, columns].head(50)
    values = shown[column].tolist() if column else list(shown.itertuples(index=False, name=None))
    return [
        Problem(
            name,
            column,
            "key",
            f"{where}: {_plural(count, 'row')} repeat a key value (e.g. {_examples(values)}); "
            "the key must be unique",
        )
    ]


def _words(dtype: str) -> str:
    return {v: k for k, v in _DTYPES.items() if k != "number"}.get(dtype, dtype)


# --------------------------------------------------------------------------- profiles


def _kind(series: pd.Series) -> str:
    import pandas.api.types as t

    if t.is_bool_dtype(series):
        return "bool"
    if t.is_integer_dtype(series):
        return "int"
    if t.is_float_dtype(series):
        return "float"
    if t.is_datetime64_any_dtype(series):
        return "datetime"
    if t.is_string_dtype(series) or t.is_object_dtype(series):
        return "str"
    return str(series.dtype)


def _round(value: float) -> float | None:
    return float(f"{value:.6g}") if math.isfinite(value) else None


def _column_profile(series: pd.Series) -> dict[str, Any]:
    import numpy as np

    kind = _kind(series)
    nulls = int(series.isna().sum())
    out: dict[str, Any] = {"type": kind, "nulls": nulls}
    present = series.dropna()
    numeric = kind in ("int", "float") and len(present)
    values = np.empty(0)
    few = not numeric
    if numeric:
        # Sorted once: the distinct values are counted from it (not hashed) and the
        # percentiles read from it (a 1M-row column: 0.07 s, not 0.16 s).
        own = getattr(present.dtype, "numpy_dtype", present.dtype)  # Int64 -> int64, UInt64 -> uint64
        exact = present.to_numpy(dtype=own if kind == "int" else "float64", na_value=0)
        if kind == "float":
            exact = exact[~np.isnan(exact)]  # nunique leaves NaN out
        exact = np.sort(exact)
        few = exact.size <= CATEGORIES or int(np.count_nonzero(exact[1:] != exact[:-1])) < CATEGORIES
        values = exact.astype("float64", copy=False)
        values = values[np.isfinite(values)]
    counts = present.value_counts(dropna=True) if few else None
    if counts is not None:
        out["distinct"] = len(counts)
        out["top"] = [[_plain(v), int(c)] for v, c in counts.head(CATEGORIES).items()]
    if numeric and values.size:
        # Values near float's limits overflow a difference or a square: the figure that
        # overflows is left out (None), never a warning or a crash.
        with np.errstate(all="ignore"):
            quantiles = np.quantile(values, np.linspace(0, 1, PERCENTILES))
            low, high = float(values.min()), float(values.max())
            try:
                hist, edges = np.histogram(values, bins=BINS, range=(low, high) if high > low else None)
            except ValueError:  # a range too narrow or too wide for 20 finite bins (one huge value)
                hist, edges = np.asarray([values.size]), np.asarray([low, high])
            mean, std = float(values.mean()), float(values.std())
        out.update(
            min=_round(low),
            max=_round(high),
            mean=_round(mean),
            std=_round(std),
            percentiles=[_round(float(q)) for q in quantiles],
            histogram={"edges": [_round(float(e)) for e in edges], "counts": [int(c) for c in hist]},
        )
    return out


def _plain(value: Any) -> Any:
    value = _scalar_of(value)
    if isinstance(value, (bool, int, str)) or value is None:
        return value if not isinstance(value, str) else value[:100]
    if isinstance(value, float):
        return _round(value)
    return str(value)[:100]


def profile(located: Located, frame: pd.DataFrame | None) -> dict[str, Any]:
    """A compact summary of the dataset (``frame`` None: not present locally)."""
    out: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "dataset": located.dataset.name,
        "digest": located.digest(),
        "files": [p.relative_to(located.root).as_posix() for p in located.files][:100],
    }
    if frame is None:
        assert located.dvc is not None
        out.update(present=False, source=located.dvc.source)
        return out
    out.update(
        present=True,
        rows=len(frame),
        columns={str(c): _column_profile(frame[c]) for c in frame.columns},
    )
    return out


# --------------------------------------------------------------------------- drift and diff


def psi(base: Sequence[float], head: Sequence[float]) -> float:
    """The population stability index of two distributions over the same bins (shares)."""
    total = 0.0
    for b, h in zip(base, head, strict=True):
        b, h = max(b, _FLOOR), max(h, _FLOOR)
        total += (h - b) * math.log(h / b)
    return total


def _cdf(percentiles: Sequence[float], x: float) -> float:
    """The share of values at or below ``x``, read from a profile's percentiles."""
    import numpy as np

    qs = np.asarray(percentiles, dtype=float)
    if x < qs[0]:
        return 0.0
    if x >= qs[-1]:
        return 1.0
    ranks = np.linspace(0, 1, len(qs))
    last = int(np.searchsorted(qs, x, side="right")) - 1  # the last percentile at or below x
    if qs[last + 1] == qs[last]:
        return float(ranks[last])
    return float(ranks[last] + (ranks[last + 1] - ranks[last]) * (x - qs[last]) / (qs[last + 1] - qs[last]))


def column_psi(base: Mapping[str, Any], head: Mapping[str, Any]) -> float | None:
    """PSI of one column from two profiles (None: nothing comparable)."""
    base_top, head_top = base.get("top"), head.get("top")
    if base_top is not None and head_top is not None and base.get("distinct", 0) <= CATEGORIES:
        base_n = sum(c for _, c in base_top) or 1
        head_n = sum(c for _, c in head_top) or 1
        head_counts = {_key(v): c for v, c in head_top}
        keys = [_key(v) for v, _ in base_top]
        base_shares = [c / base_n for _, c in base_top] + [0.0]
        head_shares = [head_counts.get(k, 0) / head_n for k in keys]
        head_shares.append(max(0.0, 1 - sum(head_shares)))  # values the baseline never had
        return psi(base_shares, head_shares)
    bp, hp = base.get("percentiles"), head.get("percentiles")
    if not bp or not hp or None in bp or None in hp:
        return None
    deciles = sorted({bp[i] for i in range(10, 100, 10)})
    edges = [-math.inf, *deciles, math.inf]

    def shares(percentiles: Sequence[float]) -> list[float]:
        cdf = [0.0] + [_cdf(percentiles, e) for e in deciles] + [1.0]
        return [max(0.0, cdf[i + 1] - cdf[i]) for i in range(len(edges) - 1)]

    return psi(shares(bp), shares(hp))


def _key(value: Any) -> str:
    return repr(value)


@dataclass(frozen=True)
class ColumnChange:
    column: str
    change: str  # "added", "removed", "retyped", "changed", "same"
    base_type: str | None = None
    head_type: str | None = None
    psi: float | None = None
    drift_limit: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def drifted(self) -> bool:
        return self.psi is not None and self.drift_limit is not None and self.psi > self.drift_limit

    @property
    def notable(self) -> bool:
        """Changed, drifted past its limit, or with something to say: what a comment lists."""
        return self.change != "same" or self.drifted or bool(self.notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "change": self.change,
            "base_type": self.base_type,
            "head_type": self.head_type,
            "psi": None if self.psi is None else round(self.psi, 4),
            "drift_limit": self.drift_limit,
            "drifted": self.drifted,
            "notes": list(self.notes),
            "notable": self.notable,
        }


@dataclass(frozen=True)
class DatasetDiff:
    dataset: str
    base_label: str
    head_rows: int | None
    base_rows: int | None
    head_digest: str
    base_digest: str | None
    columns: tuple[ColumnChange, ...] = ()
    note: str = ""  # why there is no comparison, or what is missing
    problems: tuple[Problem, ...] = field(default=())  # drift beyond its limit

    @property
    def same(self) -> bool:
        return self.base_digest == self.head_digest

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "base": self.base_label,
            "same": self.same,
            "head_rows": self.head_rows,
            "base_rows": self.base_rows,
            "rows_change": None
            if self.head_rows is None or self.base_rows is None
            else self.head_rows - self.base_rows,
            "head_digest": self.head_digest,
            "base_digest": self.base_digest,
            "columns": [c.to_json() for c in self.columns if c.change != "same" or c.psi is not None],
            "drifted": [c.column for c in self.columns if c.drifted],
            "stable": sum(not c.notable for c in self.columns),
            "note": self.note,
            "summary": self.summary(),
        }

    def summary(self) -> str:
        """One line: what changed, for a comment."""
        if self.same:
            return "the same data"
        if self.note:
            return self.note
        parts = []
        if self.head_rows is not None and self.base_rows is not None:
            parts.append(f"{self.base_rows} → {self.head_rows} rows ({self.head_rows - self.base_rows:+d})")
        for kind, words in (("added", "added"), ("removed", "removed")):
            names = [c.column for c in self.columns if c.change == kind]
            if names:
                parts.append(f"{words}: {', '.join(names[:10])}{' …' if len(names) > 10 else ''}")
        parts += [
            f"{c.column} retyped {c.base_type} → {c.head_type}" for c in self.columns if c.change == "retyped"
        ]
        parts += [
            f"{c.column} drifted (PSI {c.psi:.3f} > {c.drift_limit:g})" for c in self.columns if c.drifted
        ]
        moved = sorted(
            (c for c in self.columns if c.psi is not None and not c.drifted and c.psi >= 0.1),
            key=lambda c: -(c.psi or 0),
        )
        parts += [f"{c.column} shifted (PSI {c.psi:.3f})" for c in moved[:5]]
        return "; ".join(parts) or "other bytes, the same profile"


def _number(profile: Mapping[str, Any], key: str) -> float | None:
    value = profile.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def diff(
    dataset: Dataset, head: Mapping[str, Any], base: Mapping[str, Any] | None, base_label: str
) -> DatasetDiff:
    """The head's profile against the baseline's (``base`` None: there is none)."""
    head_rows = head.get("rows") if isinstance(head.get("rows"), int) else None
    if base is None:
        return DatasetDiff(
            dataset.name,
            base_label,
            head_rows,
            None,
            str(head.get("digest")),
            None,
            note="no profile to compare with",
        )
    base_rows = base.get("rows") if isinstance(base.get("rows"), int) else None
    result = DatasetDiff(
        dataset.name, base_label, head_rows, base_rows, str(head.get("digest")), str(base.get("digest") or "")
    )
    if base.get("kept") is False:
        return _replace(result, note="the baseline's profile is not in this store: digests compared only")
    if not head.get("present") or not base.get("present"):
        side = "this change's" if not head.get("present") else "the baseline's"
        return _replace(result, note=f"{side} data is not present locally (DVC): digests compared only")
    head_cols: dict[str, Any] = head["columns"] if isinstance(head.get("columns"), dict) else {}
    base_cols: dict[str, Any] = base["columns"] if isinstance(base.get("columns"), dict) else {}
    changes = []
    for column in list(base_cols) + [c for c in head_cols if c not in base_cols]:
        h, b = head_cols.get(column), base_cols.get(column)
        limit = dataset.drift_of(column)
        if not isinstance(b, dict):
            changes.append(
                ColumnChange(column, "added", head_type=str(h.get("type")) if isinstance(h, dict) else None)
            )
            continue
        if not isinstance(h, dict):
            changes.append(ColumnChange(column, "removed", base_type=str(b.get("type"))))
            continue
        bt, ht = str(b.get("type")), str(h.get("type"))
        score = column_psi(b, h) if bt == ht or {bt, ht} <= {"int", "float"} else None
        notes = []
        for key, label in (("nulls", "nulls"), ("mean", "mean"), ("min", "min"), ("max", "max")):
            bv, hv = _number(b, key), _number(h, key)
            if bv is not None and hv is not None and bv != hv:
                notes.append(f"{label} {bv:g} → {hv:g}")
        kind = "retyped" if bt != ht else "changed" if notes or (score or 0) > 0.001 else "same"
        changes.append(ColumnChange(column, kind, bt, ht, score, limit, tuple(notes)))
    problems = tuple(
        Problem(
            dataset.name,
            c.column,
            "drift",
            f"data.{dataset.name}: column {c.column!r} drifted from {base_label}: "
            f"PSI {c.psi:.3f} > drift {c.drift_limit:g}",
        )
        for c in changes
        if c.drifted
    )
    return _replace(result, columns=tuple(changes), problems=problems)


def _replace(found: DatasetDiff, **changes: Any) -> DatasetDiff:
    import dataclasses

    return dataclasses.replace(found, **changes)


# --------------------------------------------------------------------------- a profile as evidence

_KINDS = frozenset({"bool", "int", "float", "datetime", "str"})
_MAX_COLUMNS = 10_000


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value[:100]
    if isinstance(value, int):
        return value
    return _finite(value)


def _clean_column(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    kind, nulls = raw.get("type"), _count(raw.get("nulls"))
    if kind not in _KINDS or nulls is None:
        return None
    out: dict[str, Any] = {"type": kind, "nulls": nulls}
    distinct, top = _count(raw.get("distinct")), raw.get("top")
    if distinct is not None and isinstance(top, list) and len(top) <= CATEGORIES:
        pairs = [p for p in top if isinstance(p, list) and len(p) == 2 and _count(p[1]) is not None]
        if len(pairs) == len(top):
            out["distinct"], out["top"] = distinct, [[_scalar(v), c] for v, c in pairs]
    numbers = {k: _finite(raw.get(k)) for k in ("min", "max", "mean", "std")}
    percentiles = raw.get("percentiles")
    if all(v is not None for v in numbers.values()) and isinstance(percentiles, list):
        values = [_finite(v) for v in percentiles]
        if len(values) == PERCENTILES and all(v is not None for v in values):
            ordered = [float(v) for v in values if v is not None]
            if all(a <= b for a, b in itertools.pairwise(ordered)):
                out.update(numbers, percentiles=ordered)
    return out


def clean_profile(raw: Any) -> dict[str, Any] | None:
    """A profile read from elsewhere (the report a fork's job made), kept only where it is
    what ``profile`` writes: known types, counts, finite numbers in order, bounded lists.
    None: not a profile at all. A column that is not one is dropped (and so "removed")."""
    if not isinstance(raw, dict) or raw.get("format") != PROFILE_FORMAT:
        return None
    digest = raw.get("digest")
    out: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "dataset": str(raw.get("dataset"))[:100],
        "digest": digest[:100] if isinstance(digest, str) else "",
        "files": [],
    }
    if raw.get("present") is not True:
        source = raw.get("source")
        out.update(present=False, source=source[:200] if isinstance(source, str) else "unknown")
        return out
    rows, columns = _count(raw.get("rows")), raw.get("columns")
    if rows is None or not isinstance(columns, dict) or len(columns) > _MAX_COLUMNS:
        return None
    kept = {}
    for name, column in columns.items():
        found = _clean_column(column) if isinstance(column, dict) and isinstance(name, str) else None
        if found is not None:
            kept[name[:200]] = found
    out.update(present=True, rows=rows, columns=kept)
    return out


# Declared type -> the profile's kinds that pass it (``check`` coerces), and those that cannot.
_PASSES = {
    "str": _KINDS,
    "float": {"int", "float", "bool"},
    "number": {"int", "float", "bool"},
    "int": {"int", "bool"},
    "bool": {"bool"},
    "datetime": {"datetime"},
}
_FAILS = {"float": {"datetime"}, "number": {"datetime"}, "int": {"datetime"}, "bool": {"datetime"}}


def check_profile(dataset: Dataset, found: Mapping[str, Any]) -> tuple[list[Problem], list[str]]:
    """The checks a profile can decide (a clean one: ``clean_profile``), and in words each
    it cannot (a key over many columns, allowed values past the profile's top values):
    what judges a pull request's data in a job that never reads it."""
    name = dataset.name
    if not found.get("present"):
        return [], [f"data.{name}: not present in the pull request's run (DVC: {found.get('source')})"]
    problems: list[Problem] = []
    undecided: list[str] = []
    rows = int(found["rows"])
    columns: Mapping[str, Mapping[str, Any]] = found["columns"]
    for spec in dataset.columns:
        where = f"data.{name}: column {spec.name!r}"
        column = columns.get(spec.name)
        if column is None:
            problems.append(Problem(name, spec.name, "required", f"data.{name}: no column {spec.name!r}"))
            continue
        kind = column["type"]
        if spec.type is not None and kind not in _PASSES[spec.type]:
            fractional = kind == "float" and any(  # min and max are values (percentiles interpolate)
                not float(column[k]).is_integer() for k in ("min", "max") if k in column
            )
            if kind in _FAILS.get(spec.type, ()) or (spec.type in ("int", "bool") and fractional):
                problems.append(
                    Problem(name, spec.name, "type", f"{where}: {kind} values, not of type {spec.type}")
                )
            else:
                undecided.append(f"{where}: type {spec.type} (its values are {kind})")
        nulls = column["nulls"]
        if spec.nulls == 0 and nulls:
            problems.append(
                Problem(name, spec.name, "nulls", f"{where}: {nulls} null values, and nulls is 0")
            )
        elif spec.nulls and rows and nulls / rows > spec.nulls:
            problems.append(
                Problem(
                    name,
                    spec.name,
                    "nulls",
                    f"{where}: {nulls / rows:.2%} of rows are null, more than nulls {spec.nulls:.2%}",
                )
            )
        for rule, bound, side in (("min", spec.min, "min"), ("max", spec.max, "max")):
            value = column.get(side)
            if bound is None or value is None:
                if bound is not None and kind not in ("int", "float"):
                    undecided.append(f"{where}: {rule} {bound:g} (its values are {kind})")
                continue
            if (rule == "min" and value < bound) or (rule == "max" and value > bound):
                words = "below" if rule == "min" else "above"
                problems.append(
                    Problem(
                        name,
                        spec.name,
                        rule,
                        f"{where}: values as far as {value:g}, {words} {rule} {bound:g}",
                    )
                )
        if spec.allowed is not None:
            top = column.get("top")
            if top is None or column["distinct"] > len(top):
                undecided.append(f"{where}: allowed (more values than the profile lists)")
            else:
                others = [v for v, _ in top if v not in spec.allowed]
                if others:
                    shown = ", ".join(repr(v) for v in others[:3])
                    count = sum(c for v, c in top if v not in spec.allowed)
                    problems.append(
                        Problem(
                            name,
                            spec.name,
                            "allowed",
                            f"{where}: {count} values not one of "
                            f"{', '.join(repr(v) for v in spec.allowed)} (e.g. {shown})",
                        )
                    )
    if dataset.key:
        column = columns.get(dataset.key[0]) if len(dataset.key) == 1 else None
        if column is not None and "distinct" in column and column["distinct"] < rows - column["nulls"]:
            repeated = rows - column["nulls"] - column["distinct"]
            problems.append(
                Problem(
                    name,
                    dataset.key[0],
                    "key",
                    f"data.{name}: column {dataset.key[0]!r}: {repeated} rows repeat a key value; "
                    "the key must be unique",
                )
            )
        elif column is None or "distinct" not in column:
            undecided.append(f"data.{name}: key {', '.join(dataset.key)} (a profile keeps no distinct count)")
    if dataset.rows_min is not None and rows < dataset.rows_min:
        problems.append(
            Problem(name, None, "rows", f"data.{name}: {rows} rows, fewer than rows.min {dataset.rows_min}")
        )
    if dataset.rows_max is not None and rows > dataset.rows_max:
        problems.append(
            Problem(name, None, "rows", f"data.{name}: {rows} rows, more than rows.max {dataset.rows_max}")
        )
    return problems, undecided
