"""Speed of the GemNet-OC presets (random weights) on the 37-atom Pt(111)+O slab; prints JSON.

    python benchmarks/gemnet_speed.py [--threads 1] [--teacher-batches 1 8] [--student-batches 1 32] [--fairchem]

Reports parameters, ms per structure at each batch size, the torch thread count, the teacher/student ratios
measured in this one run, and where the student's time goes (pair search, graph/index building, network).
With --fairchem it also times fairchem 1.10's teacher on the same slab in a subprocess (tests/oracle harness).
Absolute times depend on the machine and its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from ase.build import add_adsorbate, fcc111

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calculators.batch import AtomsBatch  # noqa: E402
from calculators.gemnet import GemNetOC, preset  # noqa: E402
from calculators.tags import tags_for  # noqa: E402


def slab():
    atoms = fcc111("Pt", (3, 3, 4), vacuum=10.0)
    add_adsorbate(atoms, "O", 1.2, "fcc")
    atoms.set_tags(tags_for(atoms))
    return atoms


def timed(fn, repeats: int) -> float:
    """Median wall time of `fn()` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(model: GemNetOC, batch_sizes: list[int], repeats: int) -> dict[str, float]:
    atoms = slab()
    out = {}
    for bs in batch_sizes:
        batch = AtomsBatch.from_atoms([atoms] * bs, tags=[atoms.get_tags()] * bs)
        seconds = timed(lambda b=batch: model.predict(b), repeats if bs < 16 or model.num_parameters() < 5e6 else 1)
        out[f"batch_{bs}_ms_per_structure"] = 1000 * seconds / bs
    return out


def breakdown(model: GemNetOC, bs: int, repeats: int) -> dict[str, float]:
    """ms per structure spent in the pair search, graph/index building and the rest (bases + network)."""
    atoms = slab()
    batch = AtomsBatch.from_atoms([atoms] * bs, tags=[atoms.get_tags()] * bs)
    search = timed(lambda: model.neighbor_candidates(batch), repeats)
    cands = model.neighbor_candidates(batch)
    graphs = timed(lambda: model.build_graphs(batch, cands), repeats)
    total = timed(lambda: model.predict(batch), repeats)
    g = model.build_graphs(batch, cands)
    return {
        "batch": bs,
        "pair_search_ms": 1000 * search / bs,
        "graph_and_indices_ms": 1000 * graphs / bs,
        "bases_and_network_ms": 1000 * (total - search - graphs) / bs,
        "total_ms": 1000 * total / bs,
        "edges_per_structure": g.main.num_edges / bs,
        "triplets_per_structure": int(g.trip_e2e["in"].numel()) / bs,
    }


def fairchem_teacher_seconds() -> float | None:
    sys.path.insert(0, str(ROOT / "tests" / "oracle"))
    import fairchem_oracle

    kwargs = {k: v for k, v in preset("gemnet-oc-large").to_dict().items() if not k.startswith("neighbor_")}
    calls = 3  # one structure per call; the mean includes fairchem's first (warm-up) call
    res = fairchem_oracle.run_fairchem(kwargs, None, [slab()] * calls, dtype="float32", init_seed=0, batch=False)
    forward = res.get("timings", {}).get("forward_s")
    return None if forward is None else forward / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--teacher-batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--student-batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fairchem", action="store_true", help="also time fairchem 1.10's teacher")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    teacher = GemNetOC(preset("gemnet-oc-large")).eval()
    student = GemNetOC(preset("gemnet-oc-student")).eval()
    result = {
        "structure": "Pt(111) 3x3x4 + O fcc hollow, 37 atoms",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "teacher": {"preset": "gemnet-oc-large", "parameters": teacher.num_parameters()},
        "student": {"preset": "gemnet-oc-student", "parameters": student.num_parameters()},
    }
    with torch.no_grad():
        result["teacher"].update(measure(teacher, args.teacher_batches, args.repeats))
        result["student"].update(measure(student, args.student_batches, args.repeats))
        result["student_time_breakdown"] = breakdown(student, max(args.student_batches), args.repeats)
    t, s = result["teacher"], result["student"]
    result["ratios"] = {
        "teacher_batch1_over_student_batch1": t["batch_1_ms_per_structure"] / s["batch_1_ms_per_structure"],
        f"teacher_batch1_over_student_batch{max(args.student_batches)}": t["batch_1_ms_per_structure"]
        / s[f"batch_{max(args.student_batches)}_ms_per_structure"],
    }
    if args.fairchem:
        seconds = fairchem_teacher_seconds()
        result["fairchem_1.10_teacher_batch1_ms"] = None if seconds is None else 1000 * seconds
        if seconds is not None:
            result["ratios"]["fairchem_teacher_over_our_teacher"] = 1000 * seconds / t["batch_1_ms_per_structure"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
