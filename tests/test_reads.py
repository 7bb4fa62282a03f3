"""What training reads, and what the code says it reads: the audit hook (mlci.observe), its
records read back (mlci.reads), the paths and command lines adopt finds (mlci.pycode), and
`mlci fingerprint --explain`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlci import config as cfg
from mlci import fingerprint as fp
from mlci import pycode, reads
from tests.helpers import run
from tests.lifecycle import make_project, train_json

# --------------------------------------------------------------------------- pycode (pure)


@pytest.mark.parametrize(
    ("source", "script", "expected"),
    [
        ('open("data/x.csv")', "train.py", {("data/x.csv", True)}),
        (
            'from pathlib import Path\nC = Path(__file__).resolve().parent.parent / "config" / "t.yaml"',
            "scripts/train.py",
            {("config/t.yaml", True)},
        ),
        (
            'import os\nA = "artifacts"\nopen(os.path.join(A, "metrics.json"), "w")',
            "train.py",
            {("artifacts", True), ("artifacts/metrics.json", True), ("w", True)},
        ),
        (
            'import os\nB = os.path.dirname(os.path.abspath(__file__))\nD = os.path.join(B, "data", "w.csv")',
            "src/train.py",
            {("src", True), ("src/data/w.csv", True)},
        ),
        # A folder the code computes when it runs: only the file name is known.
        (
            'import os\nopen(os.path.join(args.out, "metrics.json"), "w")',
            "train.py",
            {("metrics.json", False), ("w", True)},
        ),
        ('open(f"{out}/scores.json")', "train.py", {("scores.json", False)}),
        ('x = f"model_{v}.pkl"', "train.py", set()),
        ('P = Path("m") / "model.pkl"', "train.py", {("m/model.pkl", True)}),
        ('open("/etc/passwd"); open("../outside.txt")', "train.py", set()),
        ("this is not python (", "train.py", None),
    ],
)
def test_paths_the_code_builds(source: str, script: str, expected: set[tuple[str, bool]] | None) -> None:
    parsed = pycode.parse(source, script)
    if expected is None:
        assert parsed is None
        return
    assert parsed is not None
    assert {(p.path, p.certain) for p in parsed.paths} == expected


@pytest.mark.parametrize(
    ("source", "cli", "params"),
    [
        (
            "import argparse\np = argparse.ArgumentParser()\n"
            'p.add_argument("--alpha", type=float, default=0.5)\n'
            'p.add_argument("--l1-ratio", type=float, default=0.1)\n'
            'p.add_argument("--verbose", action="store_true")\n'
            'p.add_argument("--out")\n',
            "argparse",
            [("alpha", "--alpha", 0.5), ("l1_ratio", "--l1-ratio", 0.1), ("out", "--out", None)],
        ),
        (
            "import click\n@click.command()\n"
            '@click.option("--depth", default=3, type=int)\n'
            '@click.option("--fast/--slow", default=False)\n'
            '@click.option("--debug", is_flag=True)\n'
            "def main(depth, fast, debug): pass\n",
            "click",
            [("depth", "--depth", 3)],
        ),
        (
            "import typer\napp = typer.Typer()\n@app.command()\n"
            "def main(data: str, n_estimators: int = 100, lr: float = typer.Option(0.1)): pass\n",
            "typer",
            [("n_estimators", "--n-estimators", 100), ("lr", "--lr", 0.1)],
        ),
        (
            "import hydra\n@hydra.main(config_path='conf', config_name='config', version_base=None)\n"
            "def main(cfg): pass\n",
            "hydra",
            [],
        ),
        ("print('no command line')\n", None, []),
    ],
    ids=["argparse", "click", "typer", "hydra", "none"],
)
def test_command_lines_the_code_declares(
    source: str, cli: str | None, params: list[tuple[str, str, object]]
) -> None:
    parsed = pycode.parse(source, "src/train.py")
    assert parsed is not None
    assert parsed.cli == cli
    assert [(p.name, p.flag, p.default) for p in parsed.params] == params
    if cli == "hydra":
        assert parsed.hydra_config == "src/conf/config.yaml"


@pytest.mark.parametrize(
    ("source", "logs", "model"),
    [
        ("import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('rmse', 1)\n", True, False),
        ("import mlflow.sklearn\nmlflow.sklearn.log_model(m, 'model')\n", True, True),
        ("import mlflow\nmlflow.autolog()\n", True, True),
        ("import mlflow\nmlflow.autolog(log_models=False)\n", True, False),
        ("def log_metric(x): pass\nlog_metric(1)\n", False, False),
    ],
)
def test_code_that_logs_to_mlflow_itself(source: str, logs: bool, model: bool) -> None:
    parsed = pycode.parse(source, "train.py")
    assert parsed is not None and (parsed.mlflow, parsed.mlflow_model) == (logs, model)


# --------------------------------------------------------------------------- reads (pure)


def _read(path: str, reader: str = "train.py") -> reads.Read:
    return reads.Read(reader, path)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("config/train.yaml", "train.py read config/train.yaml, which is not in train.inputs"),
        ("README.md", "train.py read README.md, which train.exclude leaves out (**/*.md)"),
        ("data/big/part-1.csv", "train.py read data/big/part-1.csv, which is not in train.inputs"),
        ("train.py", None),  # an input
        ("params.yaml", None),  # never an input this way: the params file
        ("metrics.json", None),  # an output
        ("scratch.txt", None),  # neither git nor DVC tracks it
        (".dvc/config", None),  # DVC's own settings
        ("data/small.csv", None),  # DVC-tracked, and an input
    ],
)
def test_a_tracked_file_the_training_read_that_is_not_an_input_is_named(
    path: str, message: str | None
) -> None:
    found = reads.unlisted(
        [_read(path)],
        tracked={"config/train.yaml", "README.md", "train.py", "params.yaml", ".dvc/config"},
        dvc_tracked=["data/big", "data/small.csv"],
        inputs={"train.py", "data/small.csv"},
        not_inputs=["metrics.json", "params.yaml", ".mlci"],
        exclude=["**/*.md"],
    )
    assert [f.message().split(":")[0] for f in found] == ([message] if message else [])


def test_the_hook_notes_reads_and_changes_nothing_the_project_sees(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "train.yaml").write_text("a: 1\n")
    (project / "lib.py").write_text("X = 1\n")
    own = tmp_path / "own-site"  # a sitecustomize the project's environment already has
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITE'] = 'loaded'\n")
    (project / "train.py").write_text(
        "import json, os, sys\n"
        "import lib\n"
        "open('config/train.yaml').read()\n"
        "open('out.txt', 'w').write('x')\n"
        "os.close(os.open('config/train.yaml', os.O_RDONLY))\n"
        "open('/etc/hostname', 'rb').close() if os.path.exists('/etc/hostname') else None\n"
        "print(json.dumps({'path': sys.path, 'own': os.environ.get('OWN_SITE'),\n"
        "                  'hooked': 'sitecustomize' in sys.modules}))\n"
    )
    out = tmp_path / "reads"
    env = reads.environ({**os.environ, "PYTHONPATH": str(own)}, project, out)
    plain = subprocess.run(
        [sys.executable, "train.py"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(own)},
        capture_output=True,
        text=True,
        check=True,
    )
    hooked = subprocess.run(
        [sys.executable, "train.py"], cwd=project, env=env, capture_output=True, text=True
    )
    assert hooked.returncode == 0, hooked.stderr
    assert hooked.stderr == plain.stderr == ""
    seen, before = json.loads(hooked.stdout), json.loads(plain.stdout)
    assert seen["own"] == "loaded"  # the project's own sitecustomize still loads
    assert str(reads.HOOK_DIR) not in seen["path"]
    assert [p for p in seen["path"] if p != str(reads.HOOK_DIR)] == before["path"]
    collected = reads.collect(out, project)
    assert {r.path for r in collected} >= {"config/train.yaml", "train.py", "lib.py"}
    assert "out.txt" not in {r.path for r in collected}  # written, not read
    assert {r.reader for r in collected} == {"train.py"}


@pytest.mark.parametrize(
    "record",
    [
        b"not json",
        b"[1, 2]",
        b'{"files": "config/train.yaml"}',
        b'{"files": [1, null, "/etc/passwd", "../x", "ok.txt"], "argv0": 5}',
        b"{" * 100_000,
        b'{"files": ["' + b"a" * (2 * 1024 * 1024) + b'"]}',
    ],
)
def test_records_are_read_as_hostile_input(tmp_path: Path, record: bytes) -> None:
    (tmp_path / "1.json").write_bytes(record)
    got = reads.collect(tmp_path, tmp_path)
    assert [r.path for r in got] in ([], ["ok.txt"])


# --------------------------------------------------------------------------- --explain


def test_explain_says_why_each_file_is_an_input_or_not(tmp_path: Path) -> None:
    text = (
        "model: {name: m}\n"
        "train:\n"
        "  command: python train.py\n"
        "  inputs: ['**']\n"
        "  exclude: ['**/*.md', 'mlci.yaml']\n"
        "  params: params.yaml\n"
        "  metrics: out/metrics.json\n"
    )
    (tmp_path / "mlci.yaml").write_text(text)
    config = cfg.parse(text, tmp_path / "mlci.yaml")
    files = {"train.py": "a", "params.yaml": "b"}
    fingerprint = fp.Fingerprint("d" * 64, files, ())
    explained = fp.explain(
        config,
        fingerprint,
        ["train.py", "params.yaml", "README.md", "mlci.yaml", "out/metrics.json", ".mlci/x"],
    )
    assert [(e.path, e.input, e.why) for e in explained] == [
        ("README.md", False, "train.exclude '**/*.md'"),
        ("mlci.yaml", False, "train.exclude 'mlci.yaml'"),
        ("out/metrics.json", False, "an output (train.metrics): training writes it"),
        (
            "params.yaml",
            True,
            "train.inputs '**'; the params file (train.params), hashed as the command reads it",
        ),
        ("train.py", True, "train.inputs '**'"),
    ]


def test_training_that_reads_a_tracked_file_outside_the_inputs_is_told(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_project(tmp_path, reads=["notes/settings.txt", "params.yaml", "scratch.txt"])
    (root / "notes").mkdir()
    (root / "notes" / "settings.txt").write_text("lr: 0.1\n")
    run(["git", "add", "notes"], root)
    run(["git", "commit", "-qm", "settings"], root)
    (root / "scratch.txt").write_text("untracked and ignored\n")
    (root / ".git" / "info" / "exclude").write_text("scratch.txt\n")
    _, first = train_json(cli, root)
    warned = [line for line in first.err.splitlines() if "would not retrain" in line]
    assert warned == [
        "mlci: warning: train.py read notes/settings.txt, which is not in train.inputs: "
        "a change to it would not retrain"
    ]
    assert "`mlci fingerprint --explain`" in first.err
    _, hit = train_json(cli, root)  # a cache hit runs nothing, so says nothing
    assert "would not retrain" not in hit.err
    text = (
        (root / "mlci.yaml")
        .read_text()
        .replace("[train.py, params.yaml]", "[train.py, params.yaml, notes/*]")
    )
    (root / "mlci.yaml").write_text(text)
    _, covered = train_json(cli, root)
    assert "would not retrain" not in covered.err
    assert not list((root / ".mlci" / "runs").rglob("*.json"))  # the records went with the run's folder


@pytest.mark.slow
def test_a_project_pinning_outside_mlcis_ranges_trains_in_its_own_environment(tmp_path: Path) -> None:
    """mlci in one environment (this one: typer<0.29, its pin), the project in another with
    typer 0.29 (as `mlci requirements` lists it for pip): `mlci train` runs the command with
    the project's `python`, and each keeps its own versions."""
    import importlib.metadata

    from tests import tools

    tools.require("wheels")
    assert importlib.metadata.version("typer").startswith("0.28")  # mlci's environment
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("typer>=0.29,<0.30\npyyaml\n")
    (project / "settings.txt").write_text("not an input\n")
    (project / "train.py").write_text(
        "import json, os, pathlib, sys, typer\n"
        "open('settings.txt').read()\n"
        "major, minor = (int(p) for p in typer.__version__.split('.')[:2])\n"
        "out = pathlib.Path(os.environ['MLCI_OUTPUT_DIR'])\n"
        "(out / 'metrics.json').write_text(json.dumps({'typer_minor': minor, 'venv': int(sys.prefix != sys.base_prefix)}))\n"
    )
    (project / "mlci.yaml").write_text(
        "model: {name: pinned}\ntrain:\n  command: python train.py\n  inputs: [train.py, requirements.txt]\n"
    )
    run(["git", "init", "-q", "-b", "main"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "pinned"], project)
    env_dir = tmp_path / "project-env"
    run([sys.executable, "-m", "venv", str(env_dir)], tmp_path)
    listed = run([sys.executable, "-m", "mlci", "requirements", "requirements.txt"], project)
    assert listed.strip() == f"-r {project / 'requirements.txt'}"
    (tmp_path / "all.txt").write_text(listed)
    run(
        [
            str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
            "--find-links", str(tools.wheels()), "-r", str(tmp_path / "all.txt"),
        ],
        tmp_path,
    )  # fmt: skip
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "mlci", "train", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metrics"] == {"typer_minor": 29.0, "venv": 1.0}
    # The read-noting hook loads in the project's Python too.
    assert "train.py read settings.txt, which is not in train.inputs" in proc.stderr
    assert importlib.metadata.version("typer").startswith("0.28")
