"""Dask scaling of screening: the same generated set of surfaces screened (`screen run`'s engine,
`screening.runner.run_screening`) with the default student on a LocalCluster of 1 and of 2 workers, one torch
thread each, in one run of this script; structures/s for each into reports/dask-scaling/ (scaling.json,
scaling.md).

The student is the only model (passed as the teacher, no student), so the benchmark measures the executor, not
the teacher. Each worker count screens into a fresh run directory (no cache shared); the cluster start-up is not
timed, the first call on each worker (model load and warm-up) is.

    PYTHONPATH=. python benchmarks/dask_scaling.py --surfaces 200 --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--surfaces", type=int, default=200, help="generated candidates (adsorbate on a surface)")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma separated")
    ap.add_argument("--model", default="default-student")
    ap.add_argument("--batch-atoms", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("reports/dask-scaling"))
    args = ap.parse_args()

    from calculators.distributed import dask_executor
    from screening.evaluators import resolve_teacher
    from screening.reactions import generated_set
    from screening.runner import RunConfig, run_screening

    sset = generated_set(["Pt", "Pd", "Cu", "Ag", "Au", "Ni"], args.surfaces, seed=args.seed)
    surfaces = len(sset.atoms) - len(sset.gas_keys)
    print(f"{len(sset.reactions)} candidates, {len(sset.atoms)} distinct systems ({surfaces} surfaces and adslabs)")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    load_before = os.getloadavg()[0]
    for n in [int(x) for x in args.workers.split(",")]:
        run_dir = args.out / f"run-{n}-workers"
        shutil.rmtree(run_dir, ignore_errors=True)
        model = resolve_teacher(args.model)
        with dask_executor(workers=n) as ex:
            ex.client.wait_for_workers(n, timeout=120)
            t0 = time.perf_counter()
            res = run_screening(sset, model, None, run_dir, config=RunConfig(batch_atoms=args.batch_atoms, threads=1))
            wall = time.perf_counter() - t0
        timing = res["timing"]["teacher"]
        structures = len(sset.atoms)
        rows.append(
            {
                "workers": n,
                "structures": structures,
                "wall_s": wall,
                "structures_per_s": structures / wall,
                "runner_structures_per_s": timing.get("structures_per_s"),
                "ms_per_structure_in_batch": timing["ms_per_structure"],
            }
        )
        print(f"{n} worker(s): {structures} structures in {wall:.1f} s = {structures / wall:.2f} structures/s")
        shutil.rmtree(run_dir, ignore_errors=True)  # energies are not the point; keep the report small
    base = rows[0]["structures_per_s"]
    for r in rows:
        r["speedup_vs_first"] = r["structures_per_s"] / base
    info = {
        "model": args.model,
        "surfaces_generated": args.surfaces,
        "distinct_systems": len(sset.atoms),
        "batch_atoms": args.batch_atoms,
        "torch_threads_per_worker": 1,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        # other processes on the machine: with a load above the CPU count, 2 workers cannot have 2 free cores
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "rows": rows,
    }
    (args.out / "scaling.json").write_text(json.dumps(info, indent=2) + "\n")
    lines = [
        "# Dask scaling of screening",
        "",
        f"`benchmarks/dask_scaling.py`: {len(sset.atoms)} distinct systems from {args.surfaces} generated candidates,"
        f" model {args.model} only, batches of ≤ {args.batch_atoms} atoms, 1 torch thread per worker, "
        f"{os.cpu_count()} CPUs (1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: other "
        "processes shared them). Wall clock of `run_screening` (cluster start-up excluded; model load and warm-up on "
        "each worker included).",
        "",
        "| workers | structures | wall s | structures/s | vs first |",
        "|---|---|---|---|---|",
        *(
            f"| {r['workers']} | {r['structures']} | {r['wall_s']:.1f} | {r['structures_per_s']:.2f} | "
            f"{r['speedup_vs_first']:.2f}× |"
            for r in rows
        ),
        "",
    ]
    (args.out / "scaling.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
