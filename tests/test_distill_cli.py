"""`distill` commands end to end on tiny settings (tiny GemNet-OC teacher checkpoint, a few structures)."""

from __future__ import annotations

import json

import pytest
import torch
from gemnet_helpers import tiny_model
from test_distill_labels import CHEAP
from test_distill_train import SMALL
from typer.testing import CliRunner

from distill.cli import app

runner = CliRunner()


def _ok(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from calculators.gemnet.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("cli")
    save_checkpoint(tiny_model(dtype=torch.float32, **{**CHEAP, "num_blocks": 2}), d / "teacher.pt")
    common = ["--elements", "Pt,Cu", "--adsorbates", "H,O", "--prototypes", "fcc,B2", "--layers", "2"]
    _ok(["generate", "-o", d / "train.extxyz", "-n", 6, "--seed", 0, *common])
    _ok(["generate", "-o", d / "test.extxyz", "-n", 3, "--seed", 1, *common])
    for name in ("train", "test"):
        _ok(["label", d / f"{name}.extxyz", "-c", d / f"labels_{name}", "--teacher", d / "teacher.pt",
             "--chunk-size", 4, "--hessian-rows", 1])  # fmt: skip
    recipe = {"student_overrides": SMALL, "max_steps": 3, "warmup_steps": 1, "batch_size": 2, "eval_every": 2,
              "progress": False, "losses": {"fork": 10.0, "n2n": 1.0, "fork_max_edges": 16}}  # fmt: skip
    (d / "recipe.json").write_text(json.dumps(recipe))
    return d


def test_generate_label_train_evaluate(workdir):
    d = workdir
    out = _ok(["label", d / "train.extxyz", "-c", d / "labels_train", "--teacher", d / "teacher.pt",
               "--chunk-size", 4, "--hessian-rows", 1])  # fmt: skip
    assert "2 chunks" in out  # already complete: nothing relabelled
    bad = runner.invoke(app, ["label", str(d / "train.extxyz"), "-c", str(d / "labels_train"), "--teacher",
                              str(d / "teacher.pt"), "--chunk-size", "4", "--hessian-rows", "2"])  # fmt: skip
    assert bad.exit_code == 2 and "different settings" in bad.output
    _ok(["train", d / "labels_train", "-o", d / "run", "--config", d / "recipe.json"])
    ckpt = torch.load(d / "run" / "student.pt", weights_only=True)
    assert ckpt["metadata"]["recipe"]["losses"]["fork"] == 10.0
    assert ckpt["metadata"]["teacher"]["class"].endswith("GemNetOC")
    res = json.loads(_ok(["evaluate", d / "run" / "student.pt", "-c", d / "labels_test"]))
    assert res["num_structures"] == 3 and res["force_mae"] >= 0


def test_prune_and_ablate(workdir):
    d = workdir
    out = _ok(["prune", d / "teacher.pt", "-o", d / "pruned.pt", "--blocks", "1", "--structures", d / "test.extxyz"])
    assert "embedding" in out and (d / "pruned.pt").is_file()
    rep = d / "report"
    _ok(["ablate", d / "labels_train", "--test-cache", d / "labels_test", "-o", rep, "--work", d / "abl",
         "--config", d / "recipe.json", "--variants", "task-only,+FORK", "--adsorption", 3,
         "--teacher", d / "teacher.pt"])  # fmt: skip
    md = (rep / "ablation.md").read_text()
    assert "task-only" in md and "+FORK" in md
    assert (rep / "ablation.csv").read_text().count("\n") == 3


def test_info_shows_architecture_recipe_teacher_and_metrics(workdir, tmp_path):
    from test_gemnet_checkpoint import fairchem_style

    from calculators import DEFAULT_STUDENT

    text = _ok(["info", DEFAULT_STUDENT])
    meta = torch.load(DEFAULT_STUDENT, weights_only=True)["metadata"]
    from calculators.gemnet import load_project_checkpoint

    n_params = load_project_checkpoint(DEFAULT_STUDENT)[0].num_parameters()
    assert "architecture  gemnet_oc" in text and f"parameters    {n_params:,}" in text
    assert "12 neighbours (non-strict, mutual symmetrisation)" in text  # the fast preset's neighbour selection
    assert "direct forces, net force removed" in text  # zero_net_force of the shipped student
    assert meta["teacher"]["weights_sha256"] in text and "sevennet-0" in text
    assert f"max_steps: {meta['recipe']['max_steps']}" in text and '"forces": 10.0' in text  # the recipe
    assert "validation: energy_mae_per_atom" in text  # the metrics, and the benchmark's judged numbers
    assert "benchmark:" in text and "single point: ΔE MAE, all reactions" in text and "(target <= 0.1)" in text
    # a student trained by `distill train`: JSON form, teacher fingerprint of the label cache
    student = workdir / "run" / "student.pt"
    if not student.is_file():  # written by test_generate_label_train_evaluate when run first
        _ok(["train", workdir / "labels_train", "-o", workdir / "run", "--config", workdir / "recipe.json"])
    summary = json.loads(_ok(["info", student, "--json"]))
    assert summary["recipe"]["max_steps"] == 3 and summary["teacher"]["class"].endswith("GemNetOC")
    assert set(summary["metrics"]) == {"validation"} and summary["metrics"]["validation"]["num_structures"] >= 1
    # fairchem files have no recipe; junk is a clear error
    torch.save(fairchem_style(tiny_model(dtype=torch.float32)), tmp_path / "fc.pt")
    fc = json.loads(_ok(["info", tmp_path / "fc.pt", "--json"]))
    assert fc["format"] == "fairchem checkpoint" and fc["recipe"] is None and fc["parameters"] > 0
    torch.save([1, 2], tmp_path / "junk.pt")
    bad = runner.invoke(app, ["info", str(tmp_path / "junk.pt")])
    assert bad.exit_code == 2 and "error:" in bad.output


def test_pairs_then_train_with_the_pair_loss(workdir, tmp_path):
    d = workdir
    out = _ok(["pairs", d / "labels_train", "--teacher", d / "teacher.pt", "--chunk-size", 4])
    assert "labels_train-pairs" in out and (d / "labels_train-pairs" / "pairs.json").is_file()
    other = tmp_path / "other.pt"  # another teacher: refused with one line
    from calculators.gemnet.checkpoint import save_checkpoint

    save_checkpoint(tiny_model(seed=5, dtype=torch.float32, **CHEAP), other)
    bad = runner.invoke(app, ["pairs", str(d / "labels_test"), "--teacher", str(other)])
    assert bad.exit_code == 2 and "pairs must come from the cache's own teacher" in bad.output
    recipe = {"student_overrides": SMALL, "max_steps": 2, "warmup_steps": 1, "batch_size": 3, "eval_every": 2,
              "progress": False, "losses": {"energy": 1.0, "forces": 10.0, "pair": 1.0}}  # fmt: skip
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    _ok(["train", d / "labels_train", "-o", tmp_path / "run", "--config", tmp_path / "recipe.json"])
    meta = torch.load(tmp_path / "run" / "student.pt", weights_only=True)["metadata"]
    assert meta["paired_records"] > 0 and meta["recipe"]["losses"]["pair"] == 1.0


def test_make_student_passes_its_options_to_the_pipeline(monkeypatch, tmp_path):
    import distill.pipeline as pipeline

    seen = []
    monkeypatch.setattr(pipeline, "make_student", lambda out, cfg: seen.append(cfg) or out / "student.pt")
    _ok(["make-student", "-o", tmp_path / "run", "--no-pairs", "--nproc", 2, "--surfaces", 10])
    _ok(["make-student", "-o", tmp_path / "run"])
    assert [c.pairs for c in seen] == [False, True] and seen[0].nproc == 2 and seen[0].n_surfaces == 10
