"""One GPU run that labels a training set with the teacher and fine-tunes the student on it, sized for the device
machine (one H200, a single command of at most 10 minutes): the data campaign the student issue (#10) needs and a
2-core CPU cannot make (a CPU session labels ~15 k records; this labels as many distinct relaxations as
`--relax-budget` seconds allow).

Stages, each timed into `summary.json`:
1. relaxation paths: `--starts` sampled slabs/adslabs (`distill.screening_data.surface_structures`, seed `--seed`,
   `--alloy-fraction` binaries) relaxed together by the teacher (batched FIRE, `label_paths(batched=True)`), no
   new group of 256 starts after `--relax-budget` s (the group under way finishes); snapshots every `--every`
   force evaluations and the last,
   labelled by the teacher, with their adsorbate-free partners (pair loss);
2. gas molecules (stretched and bent, `--gas-per-molecule` each) and bulk cells, labelled by the teacher;
2b. on-policy paths (`--onpolicy-starts`, 0: none): new starts (seed + 3) relaxed by the student being fine-tuned
   (batched FIRE on the device, no new group after `--onpolicy-budget` s), its snapshots and their partners
   labelled by the teacher: where the student's own relaxations wander, the teacher says what is there (the
   issue's on-policy round; on the CPU the student's relaxation outliers were the largest relax-mode errors);
3. `distill train` of `--student` (default: the shipped student) on both caches with `--recipe`, stopped after
   `--train-seconds`, or 20 s before `--deadline` seconds from the start (the trainer keeps `best.pt` at every
   evaluation, every 250 steps, so a stopped run still leaves one);
4. `best.pt`, `student.pt` (only when training reached the recipe's `max_steps`), `log.csv` and `summary.json`
   copied to `--out`.

The labels stay on the device machine (the caches are larger than what comes back); the checkpoints carry their
recipe and data description. Judge a returned student here with `benchmarks/student_benchmark.py --skip speed`.

Device run (the package's dependencies that the device image lacks travel as wheels: `bash
benchmarks/gpu_wheels.sh` here first, then name `.whl` in `carry`):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.
    python3 benchmarks/gpu_campaign.py --device cuda --out $OUT
CPU smoke run (tiny sizes; `tests/test_gpu_campaign.py` runs one):
    PYTHONPATH=. python benchmarks/gpu_campaign.py --device cpu --starts 4 --relax-steps 4 --train-seconds 60 ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_RECIPE = HERE / "gpu_campaign.json"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def label_stage(args: argparse.Namespace, work: Path) -> list[Path]:
    """Stages 1, 2 and 2b: [the relaxation-paths cache, the gas/bulk cache, and the on-policy cache when
    `args.onpolicy_starts`], all labelled by `args.teacher`."""
    from calculators import load_model
    from distill.labels import LabelSettings, label_structures
    from distill.screening_data import SCREENING_METALS, bulk_structures, gas_structures, label_paths

    paths = label_paths(
        work, tag=f"paths{args.seed}", seed=args.seed, n_starts=args.starts, teacher=args.teacher,
        alloy_fraction=args.alloy_fraction, clean_fraction=args.clean_fraction, elements=SCREENING_METALS,
        relax_steps=args.relax_steps, every=args.every, chunk_size=args.chunk_size, features=False,
        device=args.device, batched=True, batch_atoms=args.batch_atoms, time_budget_s=args.relax_budget,
        progress=False,
    )  # fmt: skip
    _log(f"paths labelled: {paths}")
    teacher = load_model(args.teacher, device=args.device)
    static = gas_structures(args.gas_per_molecule, args.seed + 1) + bulk_structures(
        args.seed + 2, n_strains=args.bulk_strains, n_alloys=args.bulk_alloys
    )
    settings = LabelSettings(hessian_rows=0, features=False, chunk_size=args.chunk_size, seed=args.seed + 1)
    gas_bulk = work / f"gas_bulk{args.seed + 1}"
    label_structures(static, teacher, gas_bulk, settings, teacher_name=args.teacher)
    _log(f"gas and bulk labelled: {len(static)} structures in {gas_bulk}")
    caches = [paths, gas_bulk]
    if args.onpolicy_starts > 0:
        onpolicy = label_paths(
            work, tag=f"onpolicy{args.seed + 3}", seed=args.seed + 3, n_starts=args.onpolicy_starts,
            teacher=args.teacher, student=str(campaign_student(args)), alloy_fraction=args.alloy_fraction,
            clean_fraction=args.clean_fraction, elements=SCREENING_METALS, relax_steps=args.relax_steps,
            every=args.every, chunk_size=args.chunk_size, features=False, device=args.device, batched=True,
            batch_atoms=args.batch_atoms, time_budget_s=args.onpolicy_budget, progress=False,
        )  # fmt: skip
        _log(f"on-policy paths labelled: {onpolicy}")
        caches.append(onpolicy)
    return caches


def campaign_student(args: argparse.Namespace) -> Path:
    """The checkpoint this run fine-tunes, as an absolute path: `--student` (from the working directory, as `main`
    resolves it for the recipe), else the recipe's `student` (from the repository root, where the trainer runs)."""
    if args.student:
        return Path(args.student).resolve()
    return (ROOT / json.loads(Path(args.recipe).read_text())["student"]).resolve()


def train_stage(args: argparse.Namespace, caches: list[Path], run_dir: Path, seconds: float) -> int | None:
    """Stage 3: `distill train` in a child process stopped after `seconds`; its return code (None when
    stopped)."""
    cmd = [sys.executable, "-m", "distill.cli", "train", *map(str, caches), "-o", str(run_dir),
           "--config", str(args.recipe), "--device", args.device]  # fmt: skip
    if args.max_steps:
        cmd += ["--max-steps", str(args.max_steps)]
    _log("train: " + " ".join(cmd))
    try:
        return subprocess.run(cmd, cwd=ROOT, timeout=seconds, check=False).returncode
    except subprocess.TimeoutExpired:
        _log(f"train stopped after {seconds:.0f} s (best.pt holds the best evaluation so far)")
        return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where the checkpoints, log and summary go ($OUT)")
    parser.add_argument("--work", default="runs/gpu-campaign", help="label caches and the training run")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--teacher", default="sevennet-0")
    parser.add_argument("--student", default=None, help="checkpoint to fine-tune (default: the recipe's)")
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE), help="TrainConfig JSON")
    parser.add_argument("--seed", type=int, default=17000, help="seed .. seed + 3: paths, gas, bulk, on-policy")
    parser.add_argument("--starts", type=int, default=3000, help="relaxation starts (a budget stops earlier)")
    parser.add_argument("--alloy-fraction", type=float, default=0.5)
    parser.add_argument("--clean-fraction", type=float, default=0.15)
    parser.add_argument("--relax-steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=15, help="snapshot every this many force evaluations")
    parser.add_argument("--relax-budget", type=float, default=180.0, help="seconds of relaxing at most")
    parser.add_argument("--batch-atoms", type=int, default=None, help="atoms per relaxation batch")
    parser.add_argument("--chunk-size", type=int, default=128, help="structures per teacher call when labelling")
    parser.add_argument("--gas-per-molecule", type=int, default=40)
    parser.add_argument("--bulk-strains", type=int, default=4)
    parser.add_argument("--bulk-alloys", type=int, default=160)
    parser.add_argument(
        "--onpolicy-starts", type=int, default=2000,
        help="starts relaxed by the student for on-policy labels (0: none; a budget stops earlier)",
    )  # fmt: skip
    parser.add_argument("--onpolicy-budget", type=float, default=60.0, help="seconds of student relaxing at most")
    parser.add_argument("--train-seconds", type=float, default=240.0, help="training stops after this at most")
    parser.add_argument(
        "--deadline", type=float, default=540.0,
        help="seconds for the whole run: training stops 20 s before it, so that the files are returned",
    )  # fmt: skip
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's max_steps")
    args = parser.parse_args(argv)
    from distill.screening_data import HELDOUT_SEED

    held_out = {HELDOUT_SEED, HELDOUT_SEED + 1}  # the student benchmark's reactions and labelled structures
    if held_out & {args.seed, args.seed + 1, args.seed + 2, args.seed + 3}:
        parser.error(f"--seed {args.seed}: seeds {args.seed}..{args.seed + 3} would reuse the benchmark's {held_out}")
    t0 = time.monotonic()
    out, work = Path(args.out), Path(args.work).resolve()
    out.mkdir(parents=True, exist_ok=True)
    args.recipe = Path(args.recipe).resolve()  # the trainer runs in the repository root
    if args.student is not None:  # a recipe copy with this start
        recipe = json.loads(Path(args.recipe).read_text()) | {"student": str(Path(args.student).resolve())}
        work.mkdir(parents=True, exist_ok=True)
        args.recipe = work / "recipe.json"
        args.recipe.write_text(json.dumps(recipe, indent=1))
    import torch

    torch.set_num_threads(min(8, os.cpu_count() or 1))
    summary: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "seconds": {}}
    caches = list(label_stage(args, work))
    summary["seconds"]["label"] = time.monotonic() - t0
    from distill.labels import LabelCache

    summary["structures"] = {c.name: LabelCache(c).manifest["num_structures"] for c in caches}
    _log(f"labels: {summary['structures']} in {summary['seconds']['label']:.0f} s")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))  # kept even if the run is cut short
    t1 = time.monotonic()
    seconds = max(10.0, min(args.train_seconds, args.deadline - 20.0 - (t1 - t0)))
    summary["train_returncode"] = train_stage(args, caches, work / "train", seconds)
    summary["seconds"]["train"] = time.monotonic() - t1
    for name in ("best.pt", "student.pt", "log.csv"):
        if (work / "train" / name).is_file():
            shutil.copy2(work / "train" / name, out / name)
    summary["returned"] = sorted(p.name for p in out.iterdir())
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _log(f"done in {time.monotonic() - t0:.0f} s: {summary['returned']}")
    return summary


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["train_returncode"] in (0, None) else 1)
