"""Issue 13, user mistakes: options are checked before any work and give one error, data errors name the file
and the record, and full tracebacks appear only with --debug."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from distill.cli import app as distill_app
from screening.cli import app as screen_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from ase.build import fcc111

    from screening.structures import write_structures

    d = tmp_path_factory.mktemp("cli-errors")
    (d / "a_file").write_text("x")
    write_structures(d / "s.extxyz", [fcc111("Pt", (1, 1, 2), vacuum=5.0)])
    return d


def _refused(app, args, *expected):
    """The command exits with a usage/one-line error (exit 2) naming the problem, before any work."""
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, res.output + repr(res.exception)
    assert isinstance(res.exception, SystemExit)  # no traceback
    text = " ".join(res.output.replace("│", " ").split())  # typer draws usage errors in a wrapped box
    for word in expected:
        assert word in text, res.output
    return text


NO_MODEL = ["--teacher", "no-such-teacher.pt"]  # any model loading would fail with another message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--threads", "0", *NO_MODEL], ["--threads"]),
        (["run", "--limit", "-1", *NO_MODEL], ["--limit"]),
        (["run", "--limit", "0", *NO_MODEL], ["--limit"]),
        (["run", "--batch-atoms", "0", *NO_MODEL], ["--batch-atoms"]),
        (["run", "--fmax", "nan", *NO_MODEL], ["--fmax", "nan"]),
        (["run", "--fmax", "-0.1", *NO_MODEL], ["--fmax"]),
        (["run", "--max-steps", "-1", *NO_MODEL], ["--max-steps"]),
        (["run", "--dataset", "", *NO_MODEL], ["--dataset", "empty"]),
        (["run", "--dataset", "  ", *NO_MODEL], ["--dataset", "empty"]),
        (["funnel", "--top-k", "-3", *NO_MODEL], ["--top-k"]),
        (["funnel", "--generate", "-4", *NO_MODEL], ["--generate"]),
        (["funnel", "--fraction", "0", *NO_MODEL], ["--fraction"]),
        (["funnel", "--window", "-1", "--target", "0", *NO_MODEL], ["--window"]),
        (["funnel", "--window", "0.2", *NO_MODEL], ["--window needs --target"]),
        (["build", "--elements", "Pt", "--layers", "0"], ["--layers"]),
        (["build", "--elements", "Pt", "-n", "0"], ["-n"]),
        (["build", "--elements", "Pt", "--rattle", "nan"], ["--rattle"]),
        (["fetch", "--dataset", ""], ["--dataset", "empty"]),
        (["fetch", "--dataset", "alonso", "--daily-budget", "600"], ["--daily-budget"]),
        (["report", ".", "--dpi", "0"], ["--dpi"]),
    ],
)  # fmt: skip
def test_screen_options_are_checked_before_any_work(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(screen_app, args, *expected)
    assert not any(tmp_path.iterdir())  # nothing written


def test_out_that_is_a_file_or_not_writable(files, tmp_path, monkeypatch):
    _refused(screen_app, ["run", "--out", files / "a_file", *NO_MODEL], "is a file, not a folder")
    _refused(screen_app, ["funnel", "--out", files / "a_file" / "sub", *NO_MODEL], "is a file, not a folder")
    _refused(distill_app, ["train", files, "-o", files / "a_file"], "is a file, not a folder")
    _refused(distill_app, ["generate", "-o", files], "is a folder, not a file")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # a folder without write permission (simulated: the tests may run as root, who may write anywhere)
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    _refused(screen_app, ["run", "--out", locked / "run", *NO_MODEL], "no permission to write")
    _refused(distill_app, ["label", files / "s.extxyz", "-c", locked / "c"], "no permission to write")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["generate", "-o", "x.extxyz", "-n", "0"], ["-n"]),
        (["generate", "-o", "x.extxyz", "--layers", "0"], ["--layers"]),
        (["generate", "-o", "x.extxyz", "--rattle", "-1"], ["--rattle"]),
        (["label", "{s}", "-c", "c", "--chunk-size", "0", *NO_MODEL], ["--chunk-size"]),
        (["label", "{s}", "-c", "c", "--hessian-method", "bogus", *NO_MODEL], ["--hessian-method", "bogus"]),
        (["label", "{s}", "-c", "c", "--hessian-rows", "-1", *NO_MODEL], ["--hessian-rows"]),
        (["label", "missing.extxyz", "-c", "c"], ["missing.extxyz", "does not exist"]),
        (["label", "{s}", "-c", "c", "--device", "gpu0"], ["--device", "not a device"]),
        (["train", "c", "-o", "out", "--max-steps", "0"], ["--max-steps"]),
        (["evaluate", "student.pt", "-c", "missing-cache"], ["missing-cache", "does not exist"]),
        (["evaluate", "student.pt", "-c", "c", "--adsorption", "-1"], ["--adsorption"]),
        (["train", "missing-cache", "-o", "out"], ["missing-cache", "does not exist"]),
    ],
)  # fmt: skip
def test_distill_options_are_checked_before_any_work(args, expected, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(distill_app, [a.format(s=files / "s.extxyz") for a in args], *expected)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["out"])  # no cache, no structures file


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_refused(files, tmp_path):
    _refused(distill_app, ["label", files / "s.extxyz", "-c", tmp_path / "c", "--device", "cuda"], "no usable CUDA")
    _refused(distill_app, ["train", files, "-o", tmp_path / "o", "--device", "cuda"], "no usable CUDA")
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------- data errors name file and record
def _node(rid: str, energy) -> dict:
    return {
        "id": rid, "Equation": "* + 0.5H2(g) -> H*", "reactants": json.dumps({"star": 1, "H2gas": 0.5}),
        "products": json.dumps({"Hstar": 1}), "reactionEnergy": energy, "reactionSystems": [],
    }  # fmt: skip


def test_bad_reaction_energy_names_the_reaction(tmp_path):
    from screening.cathub import load_dataset

    path = tmp_path / "raw.json"
    path.write_text(json.dumps([_node("good-1", -0.3), _node("rxn-42", "abc")]))
    ds = load_dataset("x", data_file=path)
    assert [r.id for r in ds.reactions] == ["good-1"]
    (bad,) = ds.invalid
    assert (
        bad.id == "rxn-42"
        and "reaction 'rxn-42'" in bad.reason
        and "reactionEnergy 'abc' is not a number" in bad.reason
    )
    res = runner.invoke(screen_app, ["fetch", "--dataset", "x", "--data-file", str(path)])
    assert res.exit_code == 0 and "rxn-42: unreadable record" in res.output


@pytest.mark.parametrize("content", ['[{"id": "a", "reactionEnergy": 1.0', "{}", "\x00\x01binary", '{"data": 3}'])
def test_malformed_data_file_is_named(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_text(content)
    res = runner.invoke(screen_app, ["fetch", "--dataset", "x", "--data-file", str(path)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert str(path) in res.output and "Traceback" not in res.output
    res = runner.invoke(screen_app, ["run", "--data-file", str(path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and str(path) in res.output


def test_malformed_csv_row_names_file_and_line(tmp_path):
    from screening.cathub import load_dataset

    (tmp_path / "x.csv").write_text("id,equation,reactants,products,reaction_energy\nr1,eq,{},{},abc\n")
    (bad,) = load_dataset("x", data_file=tmp_path / "x.csv").invalid
    assert bad.id == "r1" and "x.csv, line 2" in bad.reason and "'abc' is not a number" in bad.reason


# ----------------------------------------------------------------------------- one line unless --debug
def test_unexpected_errors_are_one_line_unless_debug(tmp_path, monkeypatch):
    import screening.report

    def boom(*args, **kwargs):
        raise RuntimeError("something nobody foresaw")

    (tmp_path / "results.json").write_text("{}")
    monkeypatch.setattr(screening.report, "write_report", boom)
    res = runner.invoke(screen_app, ["report", str(tmp_path)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: RuntimeError") and "--debug" in lines[0]
    res = runner.invoke(screen_app, ["--debug", "report", str(tmp_path)])
    assert isinstance(res.exception, RuntimeError)  # the real exception, with its traceback
    monkeypatch.undo()
    (tmp_path / "results.json").write_text('{"reactions": [')  # truncated: a one-line error naming the file
    res = runner.invoke(screen_app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "results.json: not valid JSON" in res.output
