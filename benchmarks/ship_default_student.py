"""Ship a trained student as calculators/weights/default_student.pt with its recipe, data and benchmark numbers.

    python benchmarks/ship_default_student.py --student runs/make-student/round1/student.pt \
        --benchmark reports/student/metrics.json [--presets reports/student-presets/table.json]

The checkpoint keeps the training metadata (recipe, teacher fingerprint, label caches, fitted scale factors,
validation) and gains: "name", "data" (what the label caches hold and how they were made), "benchmark" (every
judged number of `benchmarks/student_benchmark.py` with its target and PASS/MISS, and the key metrics),
"presets" (the speed/accuracy table, when given), "rounds" (recipe, validation and data of every training round,
with --rounds) and "remake" (the commands that rebuild it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from calculators.gemnet import GemNetOC
from calculators.gemnet import preset as preset_config
from calculators.gemnet.checkpoint import load_project_checkpoint, save_checkpoint
from calculators.hashing import tensors_sha256
from distill.labels import LabelCache

ROOT = Path(__file__).resolve().parents[1]
REMAKE = [
    "distill make-student -o runs/make-student   # labels (incl. longer relaxations), round 0, one on-policy round",
    "python benchmarks/student_benchmark.py --student runs/make-student/student.pt --out reports/student",
    "python benchmarks/ship_default_student.py --student runs/make-student/student.pt "
    "--benchmark reports/student/metrics.json",
]


def data_description(meta: dict[str, Any]) -> dict[str, Any]:
    """The label caches the student was trained on (path, structures, label settings from each manifest) and a
    description of how their structures were generated."""
    shipped = {c["path"]: c for c in (meta.get("data") or {}).get("caches", [])}  # a file shipped before
    caches = []
    for c in meta.get("label_caches", []):
        entry = dict(c)
        try:
            m = LabelCache(c["path"]).manifest
            entry.update(structures=m["num_structures"], settings=m["settings"])
        except (FileNotFoundError, KeyError):  # caches gone: keep what the shipped record says of them
            entry = {**shipped.get(c["path"], {}), **entry}
        caches.append(entry)
    return {
        "generator": "distill.screening_data (the 'screening' recipe): 41 metals of the alonso/saini/li sets, "
        "fcc/hcp/bcc + L12/D019/B2/L10/A2B slabs on their facets, 2x2-like cells, 4 layers, biaxial strain "
        "-8..+8 %, H O OH N C CH CO at every named site, clean slabs, rattles 0-0.15 Å; stretched/bent H2 O2 H2O "
        "OH N2 CO CH4 NH3; strained bulk cells; teacher BFGS relaxation snapshots (every 4 steps) and 600 K "
        "Langevin snapshots; on-policy: each round's student's own relaxation paths (up to 300 BFGS steps, "
        "snapshots every 6; later rounds 60-80 % binaries) labelled by the teacher; longer teacher relaxations "
        "(150-300 BFGS steps, snapshots every 5-6; label_relaxations), one set 85 % binaries plus the metals "
        "with the largest errors (Zr Si Ir Ru Os Re Hf Ti), and sampled "
        "slabs/adslabs of the metals whose builder volumes were corrected (label_surfaces); from round 14, "
        "distinct teacher relaxations of 60 % binaries with sparse snapshots (every 15 steps: diversity over "
        "density) and on-policy paths of the newest student (`python -m distill.screening_data paths`); "
        "round 16 fine-tuned round 15 on new caches only (the earlier ones were no longer on the machine): the "
        "round-15 student's 350 relaxations labelled by the teacher, 470 new teacher relaxations (every 15 steps, "
        "60 % binaries), 8,000 sampled slabs/adslabs and 1,132 gas/bulk structures (seeds 12000-14002); "
        "adsorbate-removal "
        "pairs: every adslab record's structure without its tag-2 atoms, labelled by the teacher into "
        "<cache>-pairs (distill.pairs) for the pair loss on interaction energies",
        "caches": caches,
        "training_records": meta.get("training_records"),
        "dropped_over_max_force": meta.get("dropped_over_max_force"),
        "paired_records": meta.get("paired_records"),
    }


def with_zero_net_force(model: GemNetOC) -> GemNetOC:
    """The same weights with `zero_net_force` on (direct forces minus each structure's mean force): a free molecule
    no longer drifts under a net force, and the forces can only get closer to conservative labels."""
    out = GemNetOC(dataclasses.replace(model.config, zero_net_force=True)).to(next(model.parameters()).dtype)
    out.load_state_dict(model.state_dict())
    return out.eval()


def check_benchmark_weights(bench: dict[str, Any], model: GemNetOC) -> None:
    """Refuse to ship benchmark numbers measured on other weights (`student.weights_sha256` of the benchmark's
    metrics.json against the state_dict being shipped; the metadata may differ, the weights may not)."""
    measured = bench.get("student", {}).get("weights_sha256")
    shipped = tensors_sha256(model.state_dict())
    if measured != shipped:
        raise ValueError(
            f"the benchmark's student weights ({str(measured)[:12] if measured else 'not recorded'}) are not the "
            f"weights being shipped ({shipped[:12]}); rerun benchmarks/student_benchmark.py on them"
        )


_ROUND_KEYS = ("recipe", "validation", "step", "label_caches", "training_records", "paired_records")


def training_history(
    model: GemNetOC, meta: dict[str, Any], earlier: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """(rounds, preset, fitted scale factors) from the metadata of the earlier rounds' checkpoints (first to last)
    and of the one being shipped. A file shipped before, given without earlier rounds (re-benchmarked with new
    code, say), keeps its own record rather than losing it; given as an earlier round (the start of a fine-tune
    whose own earlier checkpoints are gone), its record is continued."""
    if not earlier and meta.get("rounds") and meta.get("preset"):
        return meta["rounds"], meta["preset"], meta.get("fitted_scale_factors", {})
    history = earlier + [meta]
    rounds: list[dict[str, Any]] = []
    preset = None
    for m in history:
        if m.get("rounds") and m.get("preset"):  # a file shipped before: its own rounds, itself the last of them
            rounds, preset = list(m["rounds"]), m["preset"]
            continue
        rounds.append({k: m.get(k) for k in _ROUND_KEYS})
    if preset is None:
        preset = history[0]["recipe"]["student"]  # round 0 starts from the preset; later rounds from checkpoints
        base = preset_config(preset)
        c = model.config
        if (c.emb_size_atom, c.emb_size_edge) != (base.emb_size_atom, base.emb_size_edge):  # grown by `distill widen`
            preset = f"{preset} widened to {c.emb_size_atom} atom / {c.emb_size_edge} edge channels"
    scales = next((m["fitted_scale_factors"] for m in history if m.get("fitted_scale_factors")), {})
    return rounds, preset, scales


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", required=True)
    p.add_argument("--benchmark", required=True, help="metrics.json of benchmarks/student_benchmark.py")
    p.add_argument("--presets", help="table.json of benchmarks/student_presets.py")
    p.add_argument(
        "--rounds", nargs="*", default=[], help="checkpoints of the earlier training rounds, first to last (recipes)"
    )
    p.add_argument("--out", default=str(ROOT / "calculators" / "weights" / "default_student.pt"))
    args = p.parse_args()
    model, meta = load_project_checkpoint(args.student)
    if not model.config.zero_net_force and not model.conservative:  # direct forces: ship them net-force free
        model = with_zero_net_force(model)
    bench = json.loads(Path(args.benchmark).read_text())
    check_benchmark_weights(bench, model)
    rounds, preset, scales = training_history(model, meta, [load_project_checkpoint(p)[1] for p in args.rounds])
    keep = ("single_point", "relax", "gas", "heldout_labels", "speed", "targets", "conditions")
    meta = {
        **meta,
        "name": f"catdistill default student (SevenNet-0 distilled into {preset})",
        "preset": preset,
        "rounds": rounds,
        "fitted_scale_factors": scales,
        "data": data_description(meta),
        "benchmark": {k: bench[k] for k in keep if k in bench},
        "remake": REMAKE,
    }
    if args.presets:
        meta["presets"] = json.loads(Path(args.presets).read_text())
    out = save_checkpoint(model.float(), args.out, meta)
    misses = [t["name"] for t in bench.get("targets", []) if t.get("status") != "PASS"]
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); targets missed: {len(misses)}")


if __name__ == "__main__":
    main()
