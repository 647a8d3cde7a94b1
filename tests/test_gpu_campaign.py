"""`benchmarks/gpu_campaign.py` (the one-command GPU labelling and training run) end to end on the CPU at tiny
sizes: the teacher's paths, gas/bulk and the student's own (on-policy) paths labelled by the teacher, the student
trained on them, and the checkpoints and summary returned."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from gemnet_helpers import tiny_model
from test_distill_labels import CountingTeacher

from calculators.gemnet import load_project_checkpoint, save_checkpoint
from distill.labels import LabelCache
from distill.pairs import pair_dir

ROOT = Path(__file__).resolve().parents[1]


def _campaign():
    spec = importlib.util.spec_from_file_location("gpu_campaign", ROOT / "benchmarks" / "gpu_campaign.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_campaign_labels_trains_and_returns_the_student(tmp_path, monkeypatch):
    teacher, student = tmp_path / "teacher.pt", tmp_path / "student.pt"
    save_checkpoint(CountingTeacher().model.float(), teacher)
    save_checkpoint(
        tiny_model(seed=2, dtype=torch.float32, direct_forces=True, quad_interaction=False,
                   atom_edge_interaction=False, edge_atom_interaction=False, atom_interaction=False),
        student,
    )  # fmt: skip
    recipe = json.loads((ROOT / "benchmarks" / "gpu_campaign.json").read_text())
    recipe.update(device="cpu", batch_size=2, max_steps=4, warmup_steps=1, eval_every=2, checkpoint_every=2,
                  val_fraction=0.3, threads=1)  # fmt: skip
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [
        "--out", str(out), "--work", str(work), "--device", "cpu", "--teacher", str(teacher),
        "--student", str(student), "--recipe", str(tmp_path / "recipe.json"), "--seed", "17", "--starts", "3",
        "--relax-steps", "4", "--every", "2", "--chunk-size", "16", "--gas-per-molecule", "1",
        "--bulk-strains", "1", "--bulk-alloys", "2", "--onpolicy-starts", "2", "--train-seconds", "300",
    ]  # fmt: skip
    campaign = _campaign()
    summary = campaign.main(argv)
    paths, gas_bulk, onpolicy = work / "paths17", work / "gas_bulk18", work / "onpolicy20"
    n_paths, n_onpolicy = (LabelCache(c).manifest["num_structures"] for c in (paths, onpolicy))
    assert summary["structures"] == {
        "paths17": n_paths, "gas_bulk18": LabelCache(gas_bulk).manifest["num_structures"], "onpolicy20": n_onpolicy,
    }  # fmt: skip
    assert n_paths >= 6 and LabelCache(pair_dir(paths)).manifest["num_structures"] > 0  # 3 paths, start and end
    assert n_onpolicy >= 4  # 2 paths, start and end
    # the on-policy paths were relaxed by the student being fine-tuned, and labelled by the teacher
    assert json.loads((work / "work" / "onpolicy20" / "paths.json").read_text())["relaxed_by"]["model"] == str(student)
    assert LabelCache(onpolicy).manifest["teacher"] == LabelCache(paths).manifest["teacher"]
    assert summary["train_returncode"] == 0
    assert set(summary["returned"]) == {"best.pt", "student.pt", "log.csv", "summary.json"}
    assert json.loads((out / "summary.json").read_text())["returned"] == summary["returned"]
    model, meta = load_project_checkpoint(out / "student.pt")
    assert meta["step"] == 4
    assert {Path(c["path"]).name for c in meta["label_caches"]} == {"paths17", "gas_bulk18", "onpolicy20"}
    assert meta["recipe"]["student"] == str(student) and meta["paired_records"] > 0

    # a rerun resumes the caches; training cut short by the deadline still returns the best checkpoint so far
    def stopped(cmd, *, timeout, **kwargs):
        assert 10.0 <= timeout <= 30.0  # --deadline 50: the 20 s margin and what labelling took
        raise campaign.subprocess.TimeoutExpired(cmd, timeout)

    monkeypatch.setattr(campaign.subprocess, "run", stopped)
    (out / "student.pt").unlink()
    again = campaign.main([*argv, "--deadline", "50"])
    assert again["train_returncode"] is None and again["structures"] == summary["structures"]
    assert {"best.pt", "log.csv"} <= set(again["returned"])


def test_gpu_campaign_refuses_held_out_seeds(tmp_path):
    with pytest.raises(SystemExit):
        _campaign().main(["--out", str(tmp_path / "o"), "--seed", "8999"])  # 8999-9001: 9000, 9001 are held out
    assert not (tmp_path / "o").exists()
