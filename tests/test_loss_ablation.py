"""The at-scale loss ablation (benchmarks/loss_ablation.py) on tiny models: every (seed, variant) trains from the
same start with the pair loss plus its own term, is judged by the student benchmark, and is not rerun."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
from pathlib import Path

import torch
from gemnet_helpers import pt_slab_o, tiny_model
from test_distill_labels import CHEAP, CountingTeacher

from calculators.gemnet.checkpoint import save_checkpoint
from distill.labels import LabelSettings, label_structures
from distill.pairs import label_pairs

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sb = sys.modules.get("student_benchmark") or _load("student_benchmark")
la = _load("loss_ablation")


def test_ablation_trains_each_seed_and_variant_once_and_writes_the_table(tmp_path):
    torch.set_num_threads(1)
    teacher = CountingTeacher()
    cache = tmp_path / "labels"
    structures = [pt_slab_o(size=(1, 1, 2), seed=i) for i in range(4)]
    label_structures(structures, teacher, cache, LabelSettings(chunk_size=2, hessian_rows=2))
    label_pairs(cache, teacher, chunk_size=2)
    student = save_checkpoint(tiny_model(seed=3, dtype=torch.float32, **CHEAP), tmp_path / "start.pt")
    args = argparse.Namespace(
        cache=str(cache), student=str(student), teacher="tiny", steps=2, seeds=[0, 1],
        variants=["task-only", "+Hessian"], out=str(tmp_path / "out"), work=str(tmp_path / "work"),
        bench_work=str(tmp_path / "bench"), reactions=6, labels=4, lr=1e-4,
    )  # fmt: skip
    bench = dict(per_surface=3, elements=("Pt", "Cu"), adsorbates=("H", "O"), max_steps=3, teacher_batch=5)
    train = dict(batch_size=2, eval_every=2, checkpoint_every=1, warmup_steps=1, val_fraction=0.25)
    rows = la.run(args, teacher=teacher.model, bench_overrides=bench, train_overrides=train)

    out = Path(args.out)
    assert sorted(p.name for p in (out / "results").glob("*.json")) == [
        "seed0-plus_Hessian.json", "seed0-task_only.json", "seed1-plus_Hessian.json", "seed1-task_only.json",
        "start.json",
    ]  # fmt: skip
    start = json.loads((out / "results" / "start.json").read_text())
    assert start["steps"] == 0 and start["sp_mae_eV"] > 0
    for row in rows[1:]:
        assert row["steps"] == 2 and row["sp_mae_eV"] >= 0 and row["heldout_energy_meV_per_atom"] > 0
    # the Hessian term is trained together with the pair loss (partners lack Hessian rows)
    with (Path(args.work) / "seed0" / "plus_Hessian" / "log.csv").open() as f:
        logged = list(csv.DictReader(f))
    assert any(r.get("hessian") for r in logged) and any(r.get("pair") for r in logged)
    table = (out / "ablation.md").read_text()
    assert "| task-only | 0,1 |" in table and "| +Hessian | 0,1 |" in table
    with (out / "ablation.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 5

    before = {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    la.run(args, teacher=teacher.model, bench_overrides=bench, train_overrides=train)  # nothing left to do
    assert {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")} == before
