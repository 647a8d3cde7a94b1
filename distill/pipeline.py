"""The whole student recipe as one resumable pipeline (`distill make-student`).

Stages, each resumable (label caches skip finished chunks, trajectories are one file per start, training
resumes from its state.pt):
1. the screening training set (`distill.screening_data`), labelled by the teacher: `labels/static`,
   `labels/trajectories`, and longer teacher relaxations `labels/long_relax` (`n_long_relax`); with `pairs`, the
   stripped slab of every adslab in `<cache>-pairs/` (`distill.pairs`, for the recipe's pair loss);
2. round 0: a fresh student trained on it with the recipe (element references and scale factors fitted first);
3. on-policy rounds r = 1..R: the previous student relaxes new candidates, the teacher labels snapshots of the
   student's own trajectories (`labels/onpolicy<r>`), and the student is fine-tuned on everything;
4. `student.pt` in the output folder: the last round's student.

With `nproc > 1` every training stage runs under `torchrun --nproc_per_node nproc` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECIPE = Path(__file__).resolve().parent / "recipes" / "screening.yaml"


@dataclass
class PipelineConfig:
    """Sizes and budgets of `make_student` (structures; optimizer steps)."""

    teacher: str = "sevennet-0"
    recipe: str = str(RECIPE)
    seed: int = 1000
    n_surfaces: int = 8000
    n_relax: int = 400
    n_md: int = 120
    n_gas_per_molecule: int = 80
    n_bulk_strains: int = 4
    n_bulk_alloys: int = 160
    n_long_relax: int = 240  # further teacher relaxations, up to `long_relax_steps` BFGS steps (0: none)
    long_relax_steps: int = 150
    onpolicy_rounds: int = 1
    n_onpolicy: int = 200
    onpolicy_steps: int = 3000
    onpolicy_lr: float = 5e-4
    pairs: bool = True  # label every adslab's stripped slab (`distill.pairs`) for the recipe's pair loss
    max_steps: int | None = None  # overrides the recipe's round-0 budget
    nproc: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)  # round-0 recipe overrides (e.g. student preset)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    from calculators.parsing import read_config_file

    return read_config_file(Path(path))


def round0_recipe(c: PipelineConfig) -> dict[str, Any]:
    """The round-0 training recipe of `c` (its file with the overrides and `max_steps`), checked as a
    `TrainConfig` (`ValueError` naming the file for a missing file or a bad value)."""
    from distill.train import TrainConfig

    try:
        recipe = {**_read_recipe(c.recipe), **c.overrides}
    except FileNotFoundError:
        raise FileNotFoundError(f"recipe {c.recipe} does not exist") from None
    except ValueError as err:  # unreadable JSON/YAML, not a mapping
        raise ValueError(f"recipe {c.recipe}: {err}") from None
    if c.max_steps is not None:
        recipe["max_steps"] = c.max_steps
    try:
        TrainConfig.from_dict(recipe)
    except ValueError as err:
        raise ValueError(f"recipe {c.recipe}: {err}") from None
    return recipe


def run_training(caches: list[Path], recipe: dict[str, Any], out: Path, nproc: int, metadata: dict | None = None):
    """Train on `caches` with `recipe` into `out` (resumes); under torchrun when nproc > 1. Returns student.pt."""
    out.mkdir(parents=True, exist_ok=True)
    recipe_path = out / "recipe.json"
    recipe_path.write_text(json.dumps(recipe, indent=2))
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
        cmd = [*launcher, "-m", "distill.cli", "train", *map(str, caches), "-o", str(out), "--config", str(recipe_path)]
        env = {**os.environ, "OMP_NUM_THREADS": str(recipe.get("threads") or 1)}
        subprocess.run(cmd, check=True, env=env)
    else:
        from distill.labels import LabelCache
        from distill.pairs import records_with_pairs
        from distill.train import TrainConfig, train

        records = [r for c in caches for r in records_with_pairs(c)]
        meta = {"teacher": LabelCache(caches[0]).manifest["teacher"], **(metadata or {})}
        train(TrainConfig.from_dict(recipe), records, out, metadata=meta)
    return out / "student.pt"


def make_student(out_dir: str | os.PathLike, config: PipelineConfig | None = None) -> Path:
    """Run every stage into `out_dir` (see module docstring); returns the final student checkpoint path."""
    from calculators import DistilledCalculator, load_model
    from calculators.loading import resolve_source
    from distill.labels import LabelSettings, label_structures
    from distill.pairs import label_pairs
    from distill.screening_data import label_relaxations, label_screening_set, surface_structures, teacher_trajectories

    c = config or PipelineConfig()
    recipe = round0_recipe(c)  # a bad recipe or teacher name fails now, not after hours of labelling
    try:
        resolve_source(c.teacher)
    except KeyError as err:
        raise ValueError(err.args[0] if err.args else str(err)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(c.to_dict(), indent=2))
    labels = label_screening_set(
        out / "labels", teacher=c.teacher, seed=c.seed, n_surfaces=c.n_surfaces, n_relax=c.n_relax, n_md=c.n_md,
        n_gas_per_molecule=c.n_gas_per_molecule, n_bulk_strains=c.n_bulk_strains, n_bulk_alloys=c.n_bulk_alloys,
    )  # fmt: skip
    caches = [labels["static"], labels["trajectories"]]
    if c.n_long_relax > 0:
        caches.append(
            label_relaxations(
                out / "labels",
                teacher=c.teacher,
                seed=c.seed + 1000,
                n_relax=c.n_long_relax,
                relax_steps=c.long_relax_steps,
            )  # fmt: skip
        )
    teacher = None
    if c.pairs:
        teacher = load_model(c.teacher)
        for cache in caches:
            label_pairs(cache, teacher, teacher_name=c.teacher)
    student = run_training(caches, recipe, out / "round0", c.nproc, {"pipeline": c.to_dict(), "round": 0})
    for r in range(1, c.onpolicy_rounds + 1):
        cache = out / "labels" / f"onpolicy{r}"
        starts = surface_structures(c.n_onpolicy, c.seed + 10 + r, rattle=(0.0, 0.05), clean_fraction=0.1)
        calc = DistilledCalculator(student, device="cpu")
        snaps = teacher_trajectories(
            starts, calc, out / "labels" / "work", tag=f"onpolicy{r}", relax_steps=120, every=5, seed=c.seed + r
        )  # the student's own relaxation paths
        teacher = teacher or load_model(c.teacher)
        settings = LabelSettings(hessian_rows=0, features=True, chunk_size=8, seed=c.seed)
        label_structures(snaps, teacher, cache, settings, teacher_name=c.teacher, progress=True)
        if c.pairs:
            label_pairs(cache, teacher, teacher_name=c.teacher)
        caches.append(cache)
        fine = {**recipe, "student": str(student), "lr": c.onpolicy_lr, "max_steps": c.onpolicy_steps,
                "warmup_steps": min(100, c.onpolicy_steps // 10)}  # fmt: skip
        student = run_training(caches, fine, out / f"round{r}", c.nproc, {"pipeline": c.to_dict(), "round": r})
    final = out / "student.pt"
    shutil.copyfile(student, final)
    return final
