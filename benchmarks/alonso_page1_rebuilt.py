"""Screen the recorded first page of AlonsoStrain2023 (200 reactions, metadata only) with structures rebuilt from the
metadata, relaxed by SevenNet-0 and by the default student, against the DFT reaction energies; writes
reports/alonso-page1-rebuilt/ (figures, tables, index.html).

    PYTHONPATH=. python benchmarks/alonso_page1_rebuilt.py                     # the full benchmark (~1 CPU-hour)
    PYTHONPATH=. python benchmarks/alonso_page1_rebuilt.py --spread 5 --out /tmp/alonso-smoke   # smoke test

The same as ``screen run --dataset alonso --data-file ../shared/cathub/AlonsoStrain2023.page1.metadata.json
--structures rebuild --mode relax --out reports/alonso-page1-rebuilt`` plus ``--spread N``: N reactions spread over
the page's surfaces (round robin by surfaceComposition and adsorbate), for a quick look. What the report holds:
MAE vs DFT per adsorbate for both models (raw ΔE, as CatBench reports it), CatBench anomaly classes with MAE on the
normal reactions, student-vs-teacher agreement, speed (ms per structure and per model call, same run), the rebuilt
cells, each model's lattice constants, the site-name mapping, and every reaction not rebuilt with its reason.
Re-running into the same --out resumes (per-model energy caches); lattice constants are cached per model and bulk
under --lattice-cache.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAGE = ROOT.parent / "shared" / "cathub" / "AlonsoStrain2023.page1.metadata.json"


def spread(reactions: list, n: int) -> list:
    """`n` reactions taken round robin over the surfaces (surfaceComposition) and, within one, over adsorbates."""
    by_surface: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in reactions:
        by_surface[r.surface_composition or ""][r.adsorbate].append(r)
    out: list = []
    while len(out) < n and any(any(g.values()) for g in by_surface.values()):
        for groups in by_surface.values():
            key = next((k for k in sorted(groups, key=lambda k: len(groups[k]), reverse=True) if groups[k]), None)
            if key is not None and len(out) < n:
                out.append(groups[key].pop(0))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", type=Path, default=PAGE, help="metadata page (default: the recorded page 1)")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "alonso-page1-rebuilt")
    p.add_argument("--teacher", default="sevennet-0")
    p.add_argument("--student", default="auto", help="auto = the shipped default student")
    p.add_argument("--mode", default="relax", choices=["relax", "single-point"])
    p.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    p.add_argument("--max-steps", type=int, default=300, help="FIRE steps per structure (cap)")
    p.add_argument("--spread", type=int, default=None, help="only N reactions spread over the surfaces (smoke)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lattice-cache", type=Path, default=None, help="default data/cache/lattice")
    args = p.parse_args(argv)

    import torch

    from screening.cathub import load_dataset
    from screening.evaluators import resolve_models
    from screening.rebuild import rebuild_screen_set, run_rebuilt_and_report
    from screening.runner import RunConfig

    torch.set_num_threads(args.threads)
    if not args.data_file.is_file():
        print(f"error: {args.data_file} not found (the recording lives in ../shared/cathub/)", file=sys.stderr)
        return 2
    ds = load_dataset("alonso", data_file=args.data_file)
    if args.spread:
        chosen = spread(ds.reactions, args.spread)
        ds.reactions = chosen
        print(f"smoke: {len(chosen)} reactions spread over the surfaces: {[r.id for r in chosen]}")
    teacher, student, reason = resolve_models(args.teacher, None if args.student == "auto" else args.student)
    sset = rebuild_screen_set(ds, {"teacher": teacher, "student": student}, lattice_cache=args.lattice_cache)
    print(f"rebuilt {len(sset.reactions)} reactions; not rebuilt: {sset.structures_info['skip_reasons']}")
    cfg = RunConfig(mode=args.mode, fmax=args.fmax, max_steps=args.max_steps, threads=args.threads)
    command = "python benchmarks/alonso_page1_rebuilt.py " + " ".join(argv if argv is not None else sys.argv[1:])
    res = run_rebuilt_and_report(
        sset, teacher, student, args.out, config=cfg, student_absent_reason=reason, command=command
    )
    for group, m in res["metrics"].items():
        line = f"{group:>4}: n {m['n']}, MAE teacher {m['mae_teacher']:.3f} eV"
        if m.get("mae_student") is not None:
            line += f", student {m['mae_student']:.3f} eV, ρ(student, teacher) {m['spearman_student_teacher']}"
        print(line)
    print(f"timing: {res['timing']}")
    print(f"report: {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
