"""Speed/accuracy table of student presets at the same data and training budget.

    python benchmarks/student_presets.py --cache L1 [--cache L2 ...] --steps 1500 \
        [--presets gemnet-oc-student,gemnet-oc-student-5a,gemnet-oc-student-fast] [--out reports/student-presets]

Each preset is trained with the screening recipe (`distill/recipes/screening.yaml`), only `student`,
`max_steps` (and, for short budgets, the EMA decay and warm-up) changed, on the same records and validation
split; then timed (1 thread) on the 37-atom Pt(111)+O slab at batch 1, with the number of edges and triplets
of its graph, and relaxes 30 held-out adslabs (converged share decides between direct and conservative forces).
Writes table.md and table.json; training runs resume from out/<preset>/state.pt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.student_benchmark import pt111_o_slab  # noqa: E402
from calculators.batch import AtomsBatch  # noqa: E402
from calculators.gemnet import GemNetOC, preset  # noqa: E402
from calculators.parsing import read_config_file  # noqa: E402
from distill.labels import LabelCache  # noqa: E402
from distill.train import TrainConfig, filter_records, split_records, train  # noqa: E402


def slab_batch() -> AtomsBatch:
    """The student benchmark's 37-atom Pt(111)+O slab as a batch of one."""
    atoms = pt111_o_slab()
    return AtomsBatch.from_atoms([atoms], tags=[atoms.get_tags()])


def speed(model: GemNetOC, repeats: int = 15) -> dict[str, float]:
    """Median ms per single point (energy + forces) on the 37-atom slab, with graph sizes."""
    batch = slab_batch()
    model = model.float().eval()
    g = model.build_graphs(batch)
    model.predict(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(batch)
        times.append(time.perf_counter() - t0)
    trip = g.trip_e2e
    return {
        "ms_per_structure": 1000 * statistics.median(times),
        "edges": int(g.main.edge_index.shape[1]),
        "triplets": int(trip["in"].shape[0]),
    }


def relax_check(student_path: Path, n: int = 30, seed: int = 9500) -> dict[str, float]:
    """Share of `n` held-out adslabs (seed 9500, not used in training) that the trained student relaxes to
    fmax 0.05 eV/Å within 300 FIRE steps, and the mean number of force calls."""
    from calculators import load_model, relax_many
    from distill.screening_data import surface_structures

    model = load_model(student_path)
    result = relax_many(model, surface_structures(n, seed, rattle=(0.0, 0.05)), fmax=0.05, max_steps=300)
    return {
        "relax_converged_share": sum(result.converged) / n,
        "relax_mean_steps": sum(result.steps) / n,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", action="append", required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument(
        "--presets",
        default="gemnet-oc-student-fast,gemnet-oc-student-fast-conservative,gemnet-oc-student-5a,gemnet-oc-student",
    )
    p.add_argument("--out", default="reports/student-presets")
    p.add_argument("--recipe", default=str(ROOT / "distill" / "recipes" / "screening.yaml"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ema-decay", type=float, default=0.99, help="EMA decay (0.999 lags too much for short runs)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = [r for c in args.cache for r in LabelCache(c).records()]
    base = read_config_file(Path(args.recipe))
    rows = []
    for name in args.presets.split(","):
        cfg = TrainConfig.from_dict({**base, "student": name, "max_steps": args.steps, "eval_every": args.steps,
                                     "checkpoint_every": 250, "patience": 1000, "ema_decay": args.ema_decay,
                                     "warmup_steps": min(base.get("warmup_steps", 200), args.steps // 10)})  # fmt: skip
        train_recs, val_recs = split_records(records, cfg.val_fraction, cfg.seed, by=cfg.val_split)
        val_recs, _ = filter_records(val_recs, cfg.max_force)  # validate within the training distribution
        t0 = time.time()
        result = train(cfg, train_recs, out / name, val_records=val_recs)
        model = GemNetOC(preset(name))
        row = {
            "preset": name,
            "parameters": model.num_parameters(),
            "cutoff": model.config.cutoff,
            "max_neighbors": model.config.max_neighbors,
            "steps": result["steps"],
            "train_seconds": round(time.time() - t0, 1),
            "val_energy_mev_per_atom": 1000 * result["validation"]["energy_mae_per_atom"],
            "val_force_mev_per_a": 1000 * result["validation"]["force_mae"],
            **speed(model),
            **relax_check(Path(result["student"])),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    (out / "table.json").write_text(json.dumps({"records": len(records), "caches": args.cache, "rows": rows}, indent=2))
    lines = [
        f"# Student presets at the same data and budget ({args.steps} steps, {len(records)} records)",
        "",
        f"Recipe: `{Path(args.recipe).name}` with only the preset changed; {args.threads} torch thread(s); speed on "
        "the 37-atom Pt(111)+O slab, batch 1, energy + forces.",
        "",
        "| preset | parameters | cutoff Å / neighbours | edges | triplets | ms/structure | val E meV/atom | "
        "val F meV/Å | relaxations converged | mean FIRE steps |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['parameters']:,} | {r['cutoff']:g} / {r['max_neighbors']} | {r['edges']} | "
            f"{r['triplets']} | {r['ms_per_structure']:.1f} | {r['val_energy_mev_per_atom']:.1f} | "
            f"{r['val_force_mev_per_a']:.0f} | {100 * r['relax_converged_share']:.0f} % | "
            f"{r['relax_mean_steps']:.0f} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
