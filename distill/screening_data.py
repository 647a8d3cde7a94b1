"""Training data matched to what the student screens (the "screening" recipe).

The chemistry of the CatalysisHub sets the toolkit knows by name (alonso, saini, li): their metals, the
pure and binary prototypes on their facets, 2x2 surface cells with 4 layers, biaxial strain -8...+8 %, the
adsorbates H, O, OH, N, C, CH, CO, clean slabs, bulk cells, stretched and bent gas molecules, and the
teacher's own relaxation trajectories and short MD runs (snapshots along the path, not only ideal sites).

Every structure is a deterministic function of (seed, index), except the trajectory/MD snapshots, which
depend on the teacher and are therefore written once per start structure (atomically, extxyz) under
`work_dir/trajectories/` so a killed run resumes without repeating teacher relaxations.

Seeds: training streams use `seed`, held-out benchmark sets use seeds >= 9000 (see `HELDOUT_SEED`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from calculators.files import atomic_path

# Metals of AlonsoStrain2023, SainiElectronic2022 and LiScreening2021 (the student issue's list).
_METALS = "Ag Al Au Ca Cd Ce Co Cu Dy Fe Ga Hf In Ir Li Mg Mn Mo Nb Nd Ni Os Pd Pr Pt Re Rh Ru Sc Si Sm Sn Ta Tb Tc"
SCREENING_METALS = tuple(_METALS.split() + ["Ti", "V", "W", "Y", "Zn", "Zr"])
SCREENING_ADSORBATES = ("H", "O", "OH", "N", "C", "CH", "CO")
SCREENING_GAS = ("H2", "O2", "H2O", "OH", "N2", "CO", "CH4", "NH3")
PURE_PROTOTYPES = ("fcc", "hcp", "bcc")
ALLOY_PROTOTYPES = ("L12", "D019", "B2", "L10", "A2B_hcp")
# surface cells that give 12-16 atoms in 4 layers, like CatalysisHub's 2x2 cells
SURFACE_SIZE = {"fcc": (2, 2), "hcp": (2, 2), "bcc": (2, 2), "L12": (1, 1), "D019": (1, 1), "A2B_hcp": (1, 1),
                "B2": (1, 2), "L10": (1, 2)}  # fmt: skip
STRAIN_RANGE = (-8.0, 8.0)
HELDOUT_SEED = 9000


def _space(prototypes: Sequence[str], *, elements=SCREENING_METALS, adsorbates=SCREENING_ADSORBATES, **kw):
    from screening.structures import ChemicalSpace

    return ChemicalSpace(
        elements=list(elements),
        prototypes=list(prototypes),
        adsorbates=list(adsorbates),
        strains=STRAIN_RANGE,
        continuous_strain=True,
        layers=4,
        vacuum=7.5,
        **kw,
    )


def surface_structures(
    n: int,
    seed: int,
    *,
    alloy_fraction: float = 0.45,
    clean_fraction: float = 0.15,
    rattle: tuple[float, float] = (0.0, 0.15),
    elements: Sequence[str] = SCREENING_METALS,
    adsorbates: Sequence[str] = SCREENING_ADSORBATES,
) -> list[Atoms]:
    """`n` slabs/adslabs: pure metals (fcc/hcp/bcc, 2x2x4) and binaries (L12, D019, B2, L10, A2B), uniform
    biaxial strain in -8...+8 %, adsorbates at every named site, `clean_fraction` clean slabs, and free atoms
    rattled by a Gaussian whose width (Å) is uniform in `rattle` per structure. Deterministic in (seed, k)."""
    from screening.structures import rattle as do_rattle

    rng = np.random.default_rng([seed, 17])
    spaces: dict[str, object] = {}
    out: list[Atoms] = []
    k = 0
    while len(out) < n:
        alloy = rng.random() < alloy_fraction
        protos = ALLOY_PROTOTYPES if alloy else PURE_PROTOTYPES
        proto = protos[rng.integers(len(protos))]
        if proto not in spaces:
            spaces[proto] = _space(
                [proto], elements=elements, adsorbates=adsorbates, clean_fraction=clean_fraction,
                size=SURFACE_SIZE[proto],
            )  # fmt: skip
        k += 1
        try:
            atoms = spaces[proto].draw(seed, k)
        except Exception:  # noqa: BLE001 - a combination the builder cannot make (reported by its error)
            continue
        width = float(rng.uniform(*rattle))
        if width > 0:
            atoms = do_rattle(atoms, width, rng)
        atoms.info.update(kind=atoms.info.get("kind", "adslab"), prototype=proto, rattle_width=width)
        out.append(atoms)
    return out


def _oh_radical(box: float) -> Atoms:
    mol = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.98]], cell=[box] * 3, pbc=True)
    mol.center()
    return mol


def gas_structure(name: str, box: float = 15.0) -> Atoms:
    """Gas molecule `name` (SCREENING_GAS, including the OH radical) centred in a periodic cubic box, tags 2."""
    from screening.structures import gas_molecule

    mol = _oh_radical(box) if name == "OH" else gas_molecule(name, box)
    mol.set_tags(2)
    mol.info.update(gas=name, kind="gas")
    return mol


def gas_structures(n_per_molecule: int, seed: int, gases: Sequence[str] = SCREENING_GAS) -> list[Atoms]:
    """Stretched, compressed and bent gas molecules: each bond scaled by a factor in [0.85, 1.3] (one bond at a
    time or all), angles bent by up to ±25°, plus a 0.03 Å rattle; the first of each is the ideal geometry."""
    rng = np.random.default_rng([seed, 23])
    out = []
    for name in gases:
        ideal = gas_structure(name)
        for k in range(n_per_molecule):
            mol = ideal.copy()
            if k > 0:
                pos = mol.positions.copy()
                centre = pos[0].copy()
                for j in range(1, len(mol)):
                    if rng.random() < 0.7 or len(mol) == 2:
                        vec = pos[j] - centre
                        pos[j] = centre + vec * rng.uniform(0.85, 1.3)
                if len(mol) > 2:  # bend: rotate one outer atom about a random axis through the central atom
                    from scipy.spatial.transform import Rotation

                    j = int(rng.integers(1, len(mol)))
                    axis = rng.normal(size=3)
                    axis /= np.linalg.norm(axis)
                    rot = Rotation.from_rotvec(np.radians(rng.uniform(-25, 25)) * axis)
                    pos[j] = centre + rot.apply(pos[j] - centre)
                mol.positions = pos + rng.normal(scale=0.03, size=pos.shape)
            if name in ("H2", "O2", "N2", "CO", "OH"):  # diatomics: cover the whole binding curve
                d = mol.get_distance(0, 1)
                target = float(rng.uniform(0.8, 1.45)) * ideal.get_distance(0, 1) if k > 0 else d
                vec = mol.positions[1] - mol.positions[0]
                mol.positions[1] = mol.positions[0] + vec / np.linalg.norm(vec) * target
            mol.info.update(gas=name, kind="gas", variant=k)
            out.append(mol)
    return out


def bulk_structures(seed: int, *, n_strains: int = 4, n_alloys: int = 160) -> list[Atoms]:
    """Bulk cells: each metal in fcc, hcp and bcc at `n_strains` isotropic strains in ±6 %, rattled 0.05 Å, and
    `n_alloys` random binary cells (L12, B2, L10, D019) at their default lattice constants ±4 %."""
    from screening.structures import make_bulk

    rng = np.random.default_rng([seed, 29])
    out = []

    def add(atoms: Atoms, scale: float) -> None:
        atoms = atoms.copy()
        atoms.set_cell(atoms.cell[:] * scale, scale_atoms=True)
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.pbc = True
        atoms.set_tags(0)
        atoms.info["kind"] = "bulk"
        out.append(atoms)

    for el in SCREENING_METALS:
        for proto in PURE_PROTOTYPES:
            try:
                bulk = make_bulk(el, proto)
            except Exception:  # noqa: BLE001
                continue
            if len(bulk) < 4:
                bulk = bulk.repeat((2, 2, 2) if len(bulk) == 1 else (2, 2, 1))
            for _ in range(n_strains):
                add(bulk, 1.0 + float(rng.uniform(-0.06, 0.06)))
    protos = ("L12", "B2", "L10", "D019")
    while n_alloys > 0:
        i, j = rng.choice(len(SCREENING_METALS), 2, replace=False)
        try:
            bulk = make_bulk((SCREENING_METALS[i], SCREENING_METALS[j]), protos[rng.integers(len(protos))])
        except Exception:  # noqa: BLE001
            continue
        if len(bulk) < 4:
            bulk = bulk.repeat((2, 2, 2))
        add(bulk, 1.0 + float(rng.uniform(-0.04, 0.04)))
        n_alloys -= 1
    return out


def _write_atomic(path: Path, structures: Sequence[Atoms]) -> None:
    from ase.io import write

    with atomic_path(path, suffix=".tmp.extxyz") as tmp:  # the umask's mode, not mkstemp's 0600
        write(tmp, list(structures), format="extxyz")


def _read(path: Path) -> list[Atoms]:
    from ase.io import read

    return list(read(path, index=":", format="extxyz"))


def _trajectory(start: Atoms, calc, k: int, *, relax_steps: int, every: int, fmax: float, md_steps: int,
                md_every: int, temperature_k: float, seed: int) -> list[Atoms]:  # fmt: skip
    """Snapshots of one start: BFGS path every `every` steps (final included), then optional Langevin MD."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.optimize import BFGS

    work = start.copy()
    work.calc = calc
    snaps: list[Atoms] = []

    def grab(kind: str, step: int) -> None:
        snap = work.copy()
        snap.calc = None
        snap.info.update(start.info)
        snap.info.update(trajectory=kind, traj_step=int(step), traj_start=k)
        snaps.append(snap)

    opt = BFGS(work, logfile=None, maxstep=0.2)
    opt.attach(lambda: grab("relax", opt.nsteps) if opt.nsteps % every == 0 else None, interval=1)
    try:
        opt.run(fmax=fmax, steps=relax_steps)
        if opt.nsteps % every:
            grab("relax", opt.nsteps)
        if md_steps > 0:
            rng = np.random.default_rng([seed, k, 31])
            MaxwellBoltzmannDistribution(work, temperature_K=temperature_k, rng=rng)
            dyn = Langevin(work, 1.0 * units.fs, temperature_K=temperature_k, friction=0.02, rng=rng)
            for step in range(1, md_steps + 1):
                dyn.run(1)
                if step % md_every == 0:
                    grab("md", step)
    except Exception as err:  # noqa: BLE001 - a model failure on one start must not stop the set
        print(f"trajectory {k}: {type(err).__name__}: {err}; keeping {len(snaps)} snapshots")
    return snaps


def teacher_trajectories(
    starts: Sequence[Atoms],
    calc,
    work_dir: str | os.PathLike,
    *,
    relax_steps: int = 80,
    every: int = 4,
    fmax: float = 0.05,
    md_steps: int = 0,
    md_every: int = 4,
    temperature_k: float = 600.0,
    seed: int = 0,
    tag: str = "relax",
    progress: bool = True,
) -> list[Atoms]:
    """Snapshots along the BFGS relaxation of each start by `calc` (the teacher's ASE calculator, or a student's
    for on-policy data), every `every` steps with the final one included, and, with `md_steps` > 0, along a short
    Langevin run (1 fs, `temperature_k`) from the relaxed structure. One extxyz file per start under
    work_dir/<tag>/, written atomically: reruns reuse them."""
    from tqdm import tqdm

    folder = Path(work_dir) / tag
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Atoms] = []
    for k, start in enumerate(tqdm(starts, desc=f"trajectories {tag}", disable=not progress)):
        path = folder / f"{k:05d}.extxyz"
        if path.is_file():
            out.extend(_read(path))
            continue
        snaps = _trajectory(
            start, calc, k, relax_steps=relax_steps, every=every, fmax=fmax, md_steps=md_steps, md_every=md_every,
            temperature_k=temperature_k, seed=seed,
        )  # fmt: skip
        _write_atomic(path, snaps)
        out.extend(snaps)
    return out


def batched_trajectories(
    starts: Sequence[Atoms],
    model,
    work_dir: str | os.PathLike,
    *,
    tag: str = "relax",
    relax_steps: int = 300,
    every: int = 6,
    fmax: float = 0.05,
    group: int = 256,
    batch_atoms: int | None = None,
    time_budget_s: float | None = None,
    progress: bool = True,
) -> list[Atoms]:
    """`teacher_trajectories` for a GPU: the starts relaxed `group` at a time by batched FIRE
    (`calculators.relax_many` on `model`, an `AtomisticModel`, at most `batch_atoms` atoms per batch), a snapshot
    at force evaluations 0, `every`, 2·`every`, ... and the last; files as `teacher_trajectories` writes them
    (one extxyz per start under work_dir/<tag>/, reused by reruns). With `time_budget_s`, no new group starts
    once that many seconds have passed (the first always runs): the snapshots of the starts done so far (a
    prefix) are returned, and that prefix, recorded in work_dir/<tag>/stopped.json, stays the set on reruns
    (which then only finish its groups), so that the label cache made from it resumes."""
    import time

    from tqdm import tqdm

    from calculators.files import atomic_write_json, read_json

    t0 = time.monotonic()
    folder = Path(work_dir) / tag
    folder.mkdir(parents=True, exist_ok=True)
    stopped = folder / "stopped.json"  # a budget stopped an earlier run: its prefix is the set, reruns keep it
    if stopped.is_file():  # the set is fixed: finish it whatever the budget
        starts, time_budget_s = starts[: int(read_json(stopped)["starts"])], None
    out: list[Atoms] = []
    for lo in tqdm(range(0, len(starts), group), desc=f"trajectories {tag}", disable=not progress, unit="group"):
        todo = [k for k in range(lo, min(lo + group, len(starts))) if not (folder / f"{k:05d}.extxyz").is_file()]
        if todo and out and time_budget_s is not None and time.monotonic() - t0 > time_budget_s:
            atomic_write_json(stopped, {"starts": lo, "time_budget_s": time_budget_s})
            break
        if todo:
            for k, path in zip(todo, _batched_paths(model, starts, todo, relax_steps + 1, every, fmax, batch_atoms),
                               strict=True):  # fmt: skip
                _write_atomic(folder / f"{k:05d}.extxyz", [_snapshot(starts[k], k, step, pos) for step, pos in path])
        for k in range(lo, min(lo + group, len(starts))):  # read back, new ones too: the same structures (to the
            out.extend(_read(folder / f"{k:05d}.extxyz"))  # file's digits) as a rerun, so the label cache resumes
    return out


def _batched_paths(model, starts, todo, max_steps, every, fmax, batch_atoms) -> list[list[tuple[int, np.ndarray]]]:
    """`relax_many` snapshots of starts `todo`; if the batch fails, each start alone, and a start that fails alone
    keeps only its first geometry (one bad start must not cost a GPU run its data, as in `_trajectory`)."""
    from calculators import relax_many

    def relax(indices):
        return relax_many(
            model, [starts[k] for k in indices], fmax=fmax, max_steps=max_steps, batch_atoms=batch_atoms,
            max_step=0.2, snapshot_every=every,
        ).snapshots  # fmt: skip

    try:
        return relax(todo)
    except Exception as err:  # noqa: BLE001 - fall back to one start at a time
        print(f"batched relaxation of starts {todo[0]}..{todo[-1]} failed ({type(err).__name__}: {err}); one by one")
    paths = []
    for k in todo:
        try:
            paths.extend(relax([k]))
        except Exception as err:  # noqa: BLE001
            print(f"trajectory {k}: {type(err).__name__}: {err}; keeping its start only")
            paths.append([(0, starts[k].positions.copy())])
    return paths


def _snapshot(start: Atoms, k: int, step: int, positions: np.ndarray) -> Atoms:
    """Start `k` at `positions`, with the trajectory info `_trajectory` writes."""
    snap = start.copy()
    snap.calc = None
    snap.positions = positions
    snap.info.update(trajectory="relax", traj_step=int(step), traj_start=k)
    return snap


def _teacher(teacher: str, seed: int, features: bool, chunk_size: int, device: str = "cpu"):
    """(model, its ASE calculator, label settings) of a teacher registry name or checkpoint, on `device`."""
    from calculators import TeacherCalculator, load_model
    from distill.labels import LabelSettings

    model = load_model(teacher, device=device)
    settings = LabelSettings(hessian_rows=0, features=features, chunk_size=chunk_size, seed=seed)
    return model, TeacherCalculator(model, device=device), settings


def label_screening_set(
    out_dir: str | os.PathLike,
    *,
    teacher: str = "sevennet-0",
    seed: int = 1000,
    n_surfaces: int = 6000,
    n_gas_per_molecule: int = 80,
    n_relax: int = 250,
    n_md: int = 100,
    md_steps: int = 24,
    n_bulk_strains: int = 4,
    n_bulk_alloys: int = 160,
    chunk_size: int = 8,
    features: bool = True,
    progress: bool = True,
) -> dict[str, Path]:
    """Generate the screening recipe and label it with `teacher` into two resumable label caches under
    `out_dir`: `static/` (sampled surfaces, gas, bulk: labelled first, no teacher runs needed to build them)
    and `trajectories/` (teacher relaxation and MD snapshots, built under `out_dir/work/`)."""
    from distill.labels import label_structures

    out = Path(out_dir)
    model, calc, settings = _teacher(teacher, seed, features, chunk_size)
    static = surface_structures(n_surfaces, seed) + gas_structures(n_gas_per_molecule, seed) + bulk_structures(seed)
    label_structures(static, model, out / "static", settings, teacher_name=teacher, progress=progress)
    relax_starts = surface_structures(n_relax, seed + 1, rattle=(0.0, 0.05), clean_fraction=0.1)
    relax = teacher_trajectories(relax_starts, calc, out / "work", tag="relax", seed=seed, progress=progress)
    md_starts = surface_structures(n_md, seed + 2, rattle=(0.0, 0.03), clean_fraction=0.1)
    md = teacher_trajectories(
        md_starts, calc, out / "work", tag="md", relax_steps=40, every=1000, md_steps=md_steps, seed=seed,
        progress=progress,
    )  # fmt: skip
    label_structures(relax + md, model, out / "trajectories", settings, teacher_name=teacher, progress=progress)
    return {"static": out / "static", "trajectories": out / "trajectories"}


def label_relaxations(
    out_dir: str | os.PathLike,
    *,
    teacher: str = "sevennet-0",
    seed: int = 2000,
    n_relax: int = 240,
    relax_steps: int = 150,
    every: int = 5,
    chunk_size: int = 8,
    features: bool = True,
    progress: bool = True,
) -> Path:
    """A further round of teacher relaxation trajectories (longer paths than `label_screening_set`'s, so that
    the reconstructions a screening relaxation reaches are in the data) into the label cache
    `out_dir/long_relax/`; starts from `surface_structures(n_relax, seed)` (25 % clean slabs), trajectories under
    `out_dir/work/long_relax/` (resumable)."""
    from distill.labels import label_structures

    out = Path(out_dir)
    model, calc, settings = _teacher(teacher, seed, features, chunk_size)
    starts = surface_structures(n_relax, seed, rattle=(0.0, 0.05), clean_fraction=0.25)
    snaps = teacher_trajectories(
        starts, calc, out / "work", tag="long_relax", relax_steps=relax_steps, every=every, seed=seed,
        progress=progress,
    )  # fmt: skip
    label_structures(snaps, model, out / "long_relax", settings, teacher_name=teacher, progress=progress)
    return out / "long_relax"


def label_surfaces(
    out_dir: str | os.PathLike,
    *,
    teacher: str = "sevennet-0",
    seed: int = 3000,
    n_surfaces: int = 1200,
    elements: Sequence[str] = SCREENING_METALS,
    tag: str = "surfaces",
    chunk_size: int = 8,
    features: bool = True,
    progress: bool = True,
) -> Path:
    """More sampled slabs/adslabs (`surface_structures(n_surfaces, seed, elements=...)`) labelled by the teacher
    into the cache `out_dir/<tag>/`: e.g. a set on the metals whose builder volumes changed after a training
    set was made."""
    from distill.labels import label_structures

    out = Path(out_dir)
    model, _, settings = _teacher(teacher, seed, features, chunk_size)
    structures = surface_structures(n_surfaces, seed, elements=elements)
    label_structures(structures, model, out / tag, settings, teacher_name=teacher, progress=progress)
    return out / tag


def label_paths(
    out_dir: str | os.PathLike,
    *,
    tag: str,
    seed: int,
    n_starts: int,
    teacher: str = "sevennet-0",
    student: str | None = None,
    alloy_fraction: float = 0.45,
    clean_fraction: float = 0.2,
    elements: Sequence[str] = SCREENING_METALS,
    relax_steps: int = 300,
    every: int = 6,
    pairs: bool = True,
    chunk_size: int = 8,
    features: bool = True,
    device: str = "cpu",
    batched: bool = False,
    batch_atoms: int | None = None,
    time_budget_s: float | None = None,
    progress: bool = True,
) -> Path:
    """Relaxation paths labelled by `teacher` into the cache `out_dir/<tag>/` (and, with `pairs`, the adsorbate-free
    partner of every adslab into `out_dir/<tag>-pairs/`, `distill.pairs.label_pairs`).

    Starts: `surface_structures(n_starts, seed, alloy_fraction=..., clean_fraction=..., elements=...)` rattled by
    0–0.05 Å. They are relaxed (BFGS, fmax 0.05 eV/Å, at most `relax_steps` steps, a snapshot every `every` steps
    and the final one) by the teacher, or by `student` (a checkpoint or registry name) for on-policy data: the
    student's own trajectories, labelled by the teacher. Trajectories live under `out_dir/work/<tag>/`; every stage
    resumes after a kill. Models run on `device`; labels are made `chunk_size` structures per teacher call.

    `batched` (for a GPU): the starts are relaxed together by batched FIRE (`batched_trajectories`: snapshots
    every `every` force evaluations, `batch_atoms` atoms per batch) instead of one BFGS each; with
    `time_budget_s` the relaxation stage starts no new group of starts after that many seconds, and the starts
    relaxed so far are labelled (reruns keep that set)."""
    if not batched and (batch_atoms is not None or time_budget_s is not None):
        raise ValueError("batch_atoms and time_budget_s apply to batched relaxations only (batched=True)")
    from calculators import DistilledCalculator, load_model
    from distill.labels import label_structures
    from distill.pairs import label_pairs

    out = Path(out_dir)
    wanted = {
        "seed": seed, "n_starts": n_starts, "alloy_fraction": alloy_fraction, "clean_fraction": clean_fraction,
        "elements": list(elements), "relax_steps": relax_steps, "every": every,
        "relaxed_by": _model_identity(student if student is not None else teacher),
    }  # fmt: skip
    if batched:  # (absent for BFGS paths, so that paths made before this option resume)
        wanted["optimizer"] = "batched FIRE"
    _check_paths_settings(out / "work" / tag, wanted)
    model, calc, settings = _teacher(teacher, seed, features, chunk_size, device)
    if student is not None:
        calc = DistilledCalculator(student, device=device)
    starts = surface_structures(
        n_starts, seed, alloy_fraction=alloy_fraction, rattle=(0.0, 0.05), clean_fraction=clean_fraction,
        elements=elements,
    )  # fmt: skip
    if batched:
        relaxer = model if student is None else load_model(student, device=device)
        snaps = batched_trajectories(
            starts, relaxer, out / "work", tag=tag, relax_steps=relax_steps, every=every, batch_atoms=batch_atoms,
            time_budget_s=time_budget_s, progress=progress,
        )  # fmt: skip
    else:
        snaps = teacher_trajectories(
            starts, calc, out / "work", tag=tag, relax_steps=relax_steps, every=every, seed=seed, progress=progress
        )
    label_structures(snaps, model, out / tag, settings, teacher_name=teacher, progress=progress)
    if pairs:
        label_pairs(out / tag, model, teacher_name=teacher, chunk_size=2 * chunk_size, progress=progress)
    return out / tag


def _model_identity(name_or_path: str) -> dict[str, str]:
    """A model as named, with the sha256 of its file when it is one."""
    from calculators.hashing import sha256_file

    p = Path(name_or_path)
    return {"model": str(name_or_path), "sha256": sha256_file(p)} if p.is_file() else {"model": str(name_or_path)}


def _check_paths_settings(folder: Path, wanted: dict) -> None:
    """Record the settings of a set of relaxation paths in `folder/paths.json`, or refuse to resume paths made
    with other settings (another relaxing model, seed, sizes): the trajectory files are reused by index."""
    from calculators.files import atomic_write_json, read_json

    record = folder / "paths.json"
    if record.is_file():
        saved = read_json(record)
        if saved != wanted:
            diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
            raise ValueError(
                f"{folder} holds relaxation paths made with other settings ({', '.join(diff)} differ); use another tag"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, wanted, indent=1)


def _parser():
    """The command line of `python -m distill.screening_data`: one subcommand per labelling stage."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m distill.screening_data", description="Label training data matched to what the student screens."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{set,relax,surfaces,paths}")

    p = sub.add_parser(
        "set", help="the whole screening set (label_screening_set)", description=label_screening_set.__doc__
    )
    p.add_argument("out")  # the optional sizes, left out, keep label_screening_set's defaults
    p.add_argument("n_surfaces", type=int, nargs="?")
    p.add_argument("n_relax", type=int, nargs="?")
    p.add_argument("n_md", type=int, nargs="?")
    p.add_argument("n_gas_per_molecule", metavar="n_gas", type=int, nargs="?")

    p = sub.add_parser("relax", help="teacher relaxations (label_relaxations)", description=label_relaxations.__doc__)
    p.add_argument("out")  # left out, these keep label_relaxations' defaults
    p.add_argument("seed", type=int, nargs="?")
    p.add_argument("n_relax", type=int, nargs="?")
    p.add_argument("relax_steps", type=int, nargs="?")
    p.add_argument("every", type=int, nargs="?")

    p = sub.add_parser("surfaces", help="sampled slabs/adslabs (label_surfaces)", description=label_surfaces.__doc__)
    p.add_argument("out")
    p.add_argument("tag")
    p.add_argument("seed", type=int)
    p.add_argument("n_surfaces", type=int)
    p.add_argument("elements", nargs="?", default=None, help="comma-separated metals (default: the screening metals)")

    p = sub.add_parser("paths", help="relaxation paths and their pairs (label_paths)", description=label_paths.__doc__)
    p.add_argument("out")
    p.add_argument("tag")
    p.add_argument("seed", type=int)
    p.add_argument("n_starts", type=int)
    p.add_argument("--teacher", default="sevennet-0")
    p.add_argument("--student", default=None, help="relax with this student (on-policy data)")
    p.add_argument("--alloy-fraction", type=float, default=0.45)
    p.add_argument("--clean-fraction", type=float, default=0.2)
    p.add_argument("--elements", default=None, help="comma-separated metals (default: the screening metals)")
    p.add_argument("--steps", type=int, default=300, help="relaxation steps at most")
    p.add_argument("--every", type=int, default=6, help="snapshot every this many steps")
    p.add_argument("--no-pairs", action="store_true", help="skip the adsorbate-free partners")
    p.add_argument("--device", default="cpu", help="where the models run (cpu, cuda)")
    p.add_argument("--chunk-size", type=int, default=8, help="structures per teacher call when labelling")
    p.add_argument("--batched", action="store_true", help="relax the starts together (batched FIRE; for a GPU)")
    p.add_argument("--batch-atoms", type=int, default=None, help="atoms per batch in --batched relaxations")
    p.add_argument("--time-budget", type=float, default=None, help="with --batched: seconds of relaxing at most")
    p.add_argument("--no-features", action="store_true", help="store no teacher features (smaller caches)")
    return parser


def _elements(text: str | None) -> Sequence[str]:
    return [e for e in text.split(",") if e] if text else SCREENING_METALS


def main(argv: Sequence[str] | None = None) -> object:
    """Run one labelling stage from the command line (one thread, as the labelling caches expect) and return its
    result. Unknown subcommands and options are refused by argparse with a one-line error before anything is
    written."""
    a = _parser().parse_args(None if argv is None else list(argv))
    import torch

    torch.set_num_threads(1)
    given = {k: v for k, v in vars(a).items() if k not in ("command", "out") and v is not None}
    if a.command == "set":
        return label_screening_set(a.out, **given)
    if a.command == "relax":
        return label_relaxations(a.out, **given)
    if a.command == "surfaces":
        return label_surfaces(a.out, tag=a.tag, seed=a.seed, n_surfaces=a.n_surfaces, elements=_elements(a.elements))
    return label_paths(
        a.out, tag=a.tag, seed=a.seed, n_starts=a.n_starts, teacher=a.teacher, student=a.student,
        alloy_fraction=a.alloy_fraction, clean_fraction=a.clean_fraction, elements=_elements(a.elements),
        relax_steps=a.steps, every=a.every, pairs=not a.no_pairs, device=a.device, chunk_size=a.chunk_size,
        batched=a.batched, batch_atoms=a.batch_atoms, time_budget_s=a.time_budget, features=not a.no_features,
        progress=False,
    )  # fmt: skip


if __name__ == "__main__":
    print(main())
