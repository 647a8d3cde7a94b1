"""Copy one ablation variant's student to calculators/weights/default_student.pt with its held-out numbers.

    python benchmarks/ship_default_student.py reports/ablation/steps1500 "+atomic+Hessian"

Adds to the checkpoint metadata: "heldout" (this variant's row of the ablation), "task_only_heldout" (the
task-only row at the same budget and seed) and "ablation_table" (path of the report).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from calculators.gemnet.checkpoint import load_project_checkpoint, save_checkpoint
from distill.ablation import slug

ROOT = Path(__file__).resolve().parents[1]


def main(report: str, variant: str) -> None:
    results = Path(report) / "results"
    row = json.loads((results / f"{slug(variant)}.json").read_text())
    base = json.loads((results / "task_only.json").read_text())
    model, meta = load_project_checkpoint(row["checkpoint"])
    meta = {
        **meta,
        "name": "catdistill default student (SevenNet-0 distilled into gemnet-oc-student)",
        "variant": variant,
        "heldout": {k: v for k, v in row.items() if k != "checkpoint"},
        "task_only_heldout": {k: v for k, v in base.items() if k != "checkpoint"},
        "ablation_table": str(Path(report) / "ablation.md"),
    }
    out = save_checkpoint(model.float(), ROOT / "calculators" / "weights" / "default_student.pt", meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {json.dumps(meta['heldout'])}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
