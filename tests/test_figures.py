"""The project's own plots (report.plots): checked as images, kept with the run and the
version, shown beside the report on a laptop, and in GitHub uploaded once to the rolling
pre-release by a job that does nothing else, then linked in the comment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci import images
from mlci.errors import ExitCode
from tests import pngs
from tests.github_helpers import TOKEN, ci, pr_event
from tests.helpers import run
from tests.lifecycle import add_remote, commit

SVG = """<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="120" height="80"
     onload="alert(1)">
  <script>alert(2)</script>
  <style>@import url(https://evil.example/x.css);</style>
  <defs><clipPath id="c"><rect width="100" height="60"/></clipPath></defs>
  <a href="https://evil.example"><text x="5" y="15">link</text></a>
  <foreignObject width="10" height="10"><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>
  <image href="https://evil.example/track.png" width="1" height="1"/>
  <g clip-path="url(#c)" style="stroke: #333; fill: url(https://evil.example/p)">
    <path d="M0 0 L100 60" stroke="#2f81f7" fill="url(#c)"/>
    <use xlink:href="#c"/><use href="https://evil.example/s.svg#x"/>
    <text x="5" y="75" font-size="10">accuracy {accuracy}</text>
  </g>
</svg>
"""

TRAIN = (
    pngs.WRITER
    + r"""
import json, os, pathlib

params = json.loads(pathlib.Path(os.environ["MLCI_PARAMS_FILE"]).read_text())
out = pathlib.Path(os.environ["MLCI_OUTPUT_DIR"])
(out / "model").mkdir(parents=True, exist_ok=True)
(out / "model" / "MLmodel").write_text("flavors: {}\n")
(out / "metrics.json").write_text(json.dumps({"accuracy": params["accuracy"]}))
write_png(out / "confusion.png", 24, 16, int(params["accuracy"] * 100))
(out / "curve.svg").write_text(SVG.replace("{accuracy}", str(params["accuracy"])))
"""
)

CONFIG = """\
model: {{name: demo}}
train:
  command: {python} train.py
  inputs: [train.py, params.yaml]
  params: params.yaml
  model: model
environments:
  staging:
    gates: [{{metric: accuracy, min: 0.5}}]
report:
  plots: [confusion.png, curve.svg]
"""


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text(f"SVG = {SVG!r}\n" + TRAIN)
    (root / "mlci.yaml").write_text(CONFIG.format(python=sys.executable))
    (root / "params.yaml").write_text(json.dumps({"accuracy": 0.9}))
    (root / ".gitignore").write_text(".mlci/\n")
    run(["git", "init", "-q", "-b", "main"], root)
    commit(root, "a project with plots")
    add_remote(root, tmp_path / "remote.git")
    run(["git", "push", "-q", "origin", "main:staging"], root)
    return root


# --------------------------------------------------------------------------- images


def test_a_png_is_checked_and_rebuilt_without_its_text() -> None:
    made = pngs.png(extra=((b"tEXt", b"Comment\x00<script>"), (b"pHYs", b"\x00" * 9)))
    image = images.checked("a.png", made)
    assert b"tEXt" not in image.data and b"pHYs" in image.data and (image.width, image.height) == (8, 6)
    assert images.checked("a.png", image.data).data == image.data  # rebuilt once is rebuilt
    assert images.checked("i.png", pngs.png(13, 9, interlace=1)).width == 13
    assert images.checked("p.png", pngs.png(5, 5, colour=3, depth=4)).height == 5


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("a.gif", b"GIF89a", "only .png and .svg"),
        ("a.png", b"<html><script>alert(1)</script>", "no PNG signature"),
        ("a.png", pngs.png()[:-6], "cut short"),
        ("a.png", pngs.png() + b"<script>", "after the PNG's end"),
        ("a.png", pngs.png().replace(b"IDAT", b"IDAX", 1), "CRC"),
        ("a.png", pngs.png(9000, 2), "beyond 8192"),
        ("a.png", pngs.png(4, 4, raw=b"\x00" * 10), "not the size its header says"),
        ("a.png", pngs.png(4, 4, raw=b"\x00" * 10_000_000), "not the size its header says"),  # a bomb
        ("a.png", pngs.png(extra=((b"XXXX", b""),)), "not those of an image"),
        ("a.png", pngs.png(colour=2, depth=4), "no PNG decoder accepts"),
        ("a.png", b"x" * (images.MAX_BYTES + 1), "more than"),
        ("a.svg", b'<!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg"/>', "DOCTYPE"),
        ("a.svg", b"<svg><unclosed></svg>", "does not parse"),
        ("a.svg", b'<html xmlns="http://www.w3.org/1999/xhtml"/>', "not an SVG"),
        ("a.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "size"),
        ("a.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="1e9" height="5"/>', "size"),
        ("a.svg", "<svg>\udcff</svg>".encode("utf-8", "surrogatepass"), "not UTF-8"),
    ],
)
def test_what_is_not_an_image_mlci_publishes_is_refused_with_the_reason(
    name: str, data: bytes, why: str
) -> None:
    with pytest.raises(images.BadImage, match=why):
        images.checked(name, data)


def test_an_svg_keeps_its_drawing_and_loses_what_runs_or_fetches() -> None:
    image = images.checked("curve.svg", SVG.replace("{accuracy}", "0.9").encode())
    text = image.data.decode()
    for gone in ("script", "onload", "@import", "evil.example", "foreignObject", "<image", "<a ", "<style"):
        assert gone not in text, gone
    for kept in ('d="M0 0 L100 60"', 'clip-path="url(#c)"', 'href="#c"', "accuracy 0.9", 'fill="url(#c)"'):
        assert kept in text, kept
    assert (image.width, image.height) == (120, 80)
    assert images.checked("curve.svg", image.data).data == image.data


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=400), cut=st.integers(0, 200), flip=st.integers(0, 255))
def test_hostile_bytes_are_refused_or_rebuilt_never_raised(data: bytes, cut: int, flip: int) -> None:
    """A mangled PNG or SVG gives BadImage or a rebuilt image that reads again: nothing else."""
    good = pngs.png()
    mangled = bytearray(good)
    mangled[min(cut, len(mangled) - 1)] ^= flip
    svg = SVG.encode()
    for name, blob in (
        ("x.png", data),
        ("x.png", bytes(mangled)),
        ("x.png", good[:cut] + data),
        ("x.svg", data),
        ("x.svg", svg[:cut] + data + svg[cut:]),
    ):
        try:
            image = images.checked(name, blob)
        except images.BadImage:
            continue
        assert images.checked(name, image.data).data == image.data


def test_a_plot_name_the_rest_of_mlci_would_drop_is_refused_in_mlci_yaml() -> None:
    """The names mlci records, uploads and reads back are plain: mlci.yaml says so at once,
    rather than a plot that trains and is then left out of every report."""
    from mlci import config as cfg
    from mlci.errors import ConfigError

    base = "model: {name: m}\ntrain: {command: x}\nreport: {plots: [%s]}\n"
    assert cfg.parse(base % "out/roc-curve_1.png", Path("/r/mlci.yaml")).report.plots == (
        "out/roc-curve_1.png",
    )
    for bad in ("'my plot.png'", "out/.hidden.png", "'é.svg'"):
        with pytest.raises(ConfigError, match="a plot's file name is letters, digits"):
            cfg.parse(base % bad, Path("/r/mlci.yaml"))


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_plots_are_kept_shown_uploaded_once_and_linked_and_a_forks_bad_files_go_nowhere(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh
) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path)
    folder = root / ".mlci"

    # The first model's pull request: the untrusted job's report carries its plots ...
    monkeypatch.delenv("GITHUB_TOKEN")
    made = ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root, number=11))
    assert made.code == ExitCode.OK, made.err
    assert sorted(p.name for p in folder.glob("plot-*")) == ["plot-confusion.png", "plot-curve.svg"]
    assert "script" not in (folder / "plot-curve.svg").read_text()
    # ... and the job that may write contents uploads them, once.
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    uploaded = cli("publish-plots", str(folder), "--json", cwd=root)
    assert uploaded.code == ExitCode.OK, uploaded.err
    first = json.loads(uploaded.out.split("\n", 1)[1])
    assert len(first["uploaded"]) == 2 and first["present"] == []
    (release,) = gh.releases
    assert release["tag_name"] == "mlci-plots" and release["prerelease"] and not release["draft"]
    names = sorted(a["name"] for a in release["assets"])
    assert sorted(n.split("-", 1)[1] for n in names) == ["confusion.png", "curve.svg"]
    svg_asset = next(a for a in release["assets"] if a["name"].endswith(".svg"))
    assert b"script" not in gh.asset_bytes("mlci-plots", svg_asset["name"])
    assert svg_asset["content_type"] == "image/svg+xml"
    again = cli("publish-plots", str(folder), "--json", cwd=root)
    assert json.loads(again.out.split("\n", 1)[1])["uploaded"] == []  # named by digest: once
    posts = [r for r in gh.writes() if r.path.startswith("/uploads/")]
    assert len(posts) == 2

    # The model goes to staging: its version records its plots.
    for step in (("register",), ("promote", "staging")):
        assert cli(*step, cwd=root).code == ExitCode.OK
    tag = run(["git", "tag", "-l", "demo@*"], root).split()[0]
    message = run(["git", "tag", "-l", "--format=%(contents)", tag], root)
    assert '"plots"' in message and "confusion.png" in message

    # A pull request that changes the model: on a laptop, its plots and staging's side by side.
    run(["git", "checkout", "-q", "-b", "feature"], root)
    (root / "params.yaml").write_text(json.dumps({"accuracy": 0.95}))
    commit(root, "better")
    local = cli("report", "--base", "staging", cwd=root)
    assert local.code == ExitCode.OK, local.err
    markdown = (folder / "report.md").read_text()
    assert (
        "| ![confusion.png, this change](plot-confusion.png) | ![confusion.png, staging v0.0.1](baseline-plots/staging/confusion.png) |"
        in markdown
    )
    page = cli("report", "--format", "html", cwd=root)
    assert page.code == ExitCode.OK
    html = (folder / "report.html").read_text()
    assert (
        html.count('src="data:image/png;base64,') == 2 and html.count('src="data:image/svg+xml;base64,') == 2
    )

    # In GitHub: the same-repository job trains, the plots job uploads, the report job links.
    monkeypatch.delenv("GITHUB_TOKEN")
    assert ci(cli, root, monkeypatch, "pull_request", pr_event(tmp_path, root)).code == ExitCode.OK
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    assert cli("publish-plots", str(folder), cwd=root).code == ExitCode.OK
    gh.pulls[12] = run(["git", "rev-parse", "HEAD"], root).strip()
    before = len(gh.writes())
    posted = cli("publish", str(folder), "--head-sha", gh.pulls[12], cwd=root)
    assert posted.code == ExitCode.OK, posted.err
    assert all(
        not r.path.startswith(("/uploads/", "/repos/octo/churn/releases")) for r in gh.writes()[before:]
    )
    body = gh.comments[12][0]["body"]
    urls = {a["name"]: a["browser_download_url"] for a in gh.releases[0]["assets"]}
    row = next(line for line in body.splitlines() if "confusion.png, PR #12" in line)
    head_png = next(u for n, u in urls.items() if n.endswith("confusion.png") and u in row.split("|")[1])
    staging_png = next(u for n, u in urls.items() if n.endswith("confusion.png") and u != head_png)
    assert f"![confusion.png, staging v0.0.1]({staging_png})" in row  # staging's beside it
    assert "#### Project plots" in (tmp_path / "summary.md").read_text()  # and in the job summary

    # A fork's artifact with files that are not images: refused, said, never uploaded or linked.
    (folder / "plot-confusion.png").write_bytes(b"<html><script>alert(1)</script></html>")
    (folder / "plot-link.png").symlink_to("/etc/passwd")
    (folder / "evil.png").write_bytes(pngs.png())  # not a plot-* file: never read
    before = len(gh.releases[0]["assets"])
    refused = cli("publish-plots", str(folder), cwd=root)
    assert refused.code == ExitCode.OK, refused.err
    assert "plot confusion.png left out: not a PNG" in refused.err
    assert "plot 'link.png' left out: not a regular file" in refused.err
    assert len(gh.releases[0]["assets"]) == before
    assert cli("publish", str(folder), "--head-sha", gh.pulls[12], cwd=root).code == ExitCode.OK
    body = gh.comments[12][0]["body"]
    assert "confusion.png, PR #12" not in body and "curve.svg, PR #12" in body
    assert head_png not in body and "evil" not in body and "passwd" not in body
