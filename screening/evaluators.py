"""Models for screening behind one small interface (`Evaluator`): energies of many structures (eV) and batched
relaxation, plus a description for reports (label, file, sha256, package version) and a fingerprint id that keys
the per-run energy cache (`calculators.fingerprint`).

`resolve_teacher("sevennet-0" | path.pt)` and `resolve_student(None | "none" | "random" | path.pt | name)` turn
a command-line value into an `Evaluator` through `calculators.load_model`. A missing default student is not an
error here: `resolve_student` returns (None, reason) and the run goes on teacher-only, saying why in the report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from ase import Atoms

from calculators import loading
from calculators.batched import predict_many, relax_many
from calculators.fingerprint import fingerprint_id, model_fingerprint
from calculators.gemnet import GemNetOC, preset
from calculators.hashing import sha256_file
from calculators.loading import DEFAULT_STUDENT_NAME, ModelSource, load_model, resolve_source


@dataclass
class RelaxOutcome:
    """One relaxed structure: final energy (eV), convergence, force evaluations and final positions (Å)."""

    energy: float
    converged: bool
    steps: int
    positions: Any


@dataclass
class Evaluator:
    """A model for screening. `energy_fn(atoms_list) -> energies (eV)`; `relax_fn(atoms_list, fmax, max_steps)
    -> RelaxOutcome list` (None: relaxation unsupported). `calls` counts energy_fn/relax_fn calls.
    `mptrj_energies`: the model's energies mix PBE and PBE+U as MPtrj does (see `AtomisticModel`)."""

    label: str
    fingerprint: str
    description: dict[str, Any]
    energy_fn: Callable[[Sequence[Atoms]], list[float]]
    relax_fn: Callable[[Sequence[Atoms], float, int], list[RelaxOutcome]] | None = None
    calls: int = field(default=0)
    mptrj_energies: bool = False
    # how a Dask worker rebuilds this evaluator: {"spec": name or path, "role": ..., "device": ..., "seed": ...}
    # (None: the evaluator lives in this process only and is evaluated here)
    remote: dict[str, Any] | None = None

    def energies(self, atoms_list: Sequence[Atoms]) -> list[float]:
        """Single-point energies (eV), input order."""
        self.calls += 1
        return [float(e) for e in self.energy_fn(atoms_list)]

    def relax(self, atoms_list: Sequence[Atoms], fmax: float, max_steps: int) -> list[RelaxOutcome]:
        """Relaxed energies and positions."""
        if self.relax_fn is None:
            raise ValueError(f"{self.label} cannot relax structures")
        self.calls += 1
        return self.relax_fn(atoms_list, fmax, max_steps)


def model_evaluator(model: Any, label: str, description: Mapping[str, Any], *, name: str | None = None) -> Evaluator:
    """Evaluator over an `AtomisticModel`: `predict_many` (energy only) and `relax_many` (FIRE), each list of
    structures evaluated as one batch (the screening runner forms the batches). `name` goes into the fingerprint."""

    def energies(atoms_list: Sequence[Atoms]) -> list[float]:
        atoms_list = list(atoms_list)
        budget = sum(len(a) for a in atoms_list)
        res = predict_many(model, atoms_list, batch_atoms=budget, forces=False, progress=False)
        return [float(r["energy"]) for r in res]

    def relax(atoms_list: Sequence[Atoms], fmax: float, max_steps: int) -> list[RelaxOutcome]:
        atoms_list = list(atoms_list)
        budget = sum(len(a) for a in atoms_list)
        rr = relax_many(model, atoms_list, fmax=fmax, max_steps=max_steps, batch_atoms=budget)
        return [
            RelaxOutcome(float(e), bool(c), int(s), a.positions.copy())
            for a, c, s, e in zip(rr.atoms, rr.converged, rr.steps, rr.energies, strict=True)
        ]

    fingerprint = fingerprint_id(model_fingerprint(model, name))
    mptrj = bool(getattr(model, "mptrj_energies", False))
    return Evaluator(label, fingerprint, dict(description), energies, relax, mptrj_energies=mptrj)


def lookup_evaluator(energies: Mapping[str, float], key_fn: Callable[[Atoms], str], label: str = "lookup") -> Evaluator:
    """Evaluator returning stored energies (eV) by `key_fn(atoms)` (tests: the DFT energies of a dataset)."""
    table = dict(energies)
    fp = hashlib.sha256(repr(sorted(table.items())).encode()).hexdigest()
    return Evaluator(label, fp, {"kind": "lookup", "label": label}, lambda al: [table[key_fn(a)] for a in al])


def _parameters(model: Any) -> int | None:
    return int(sum(p.numel() for p in model.parameters())) if isinstance(model, torch.nn.Module) else None


def _description(source: ModelSource, model: Any) -> dict[str, Any]:
    """What a report says about a model: its checkpoint file and sha256, or its registry name and package."""
    if source.entry is None or source.name == DEFAULT_STUDENT_NAME:
        return {
            "kind": "gemnet-oc checkpoint",
            "path": str(source.path),
            "sha256": sha256_file(source.path),
            "parameters": _parameters(model),
        }
    desc: dict[str, Any] = {"kind": source.architecture, "name": source.name}
    if _parameters(model) is not None:
        desc["parameters"] = _parameters(model)
    if source.architecture == "sevennet":
        desc["package"] = f"sevenn=={version('sevenn')}"
        desc["model"] = source.entry.get("sevenn_name", source.name)
    else:
        desc["path"] = str(source.path)
        desc["sha256"] = sha256_file(source.path) if source.path else None
    return desc


def _evaluator(spec: str | Path, role: str, device: str) -> Evaluator:
    """Evaluator of a registry name or checkpoint path, labelled for `role` ("teacher" or "student")."""
    source = resolve_source(spec)
    model = load_model(spec, device=device, dtype=torch.float32)
    if source.entry is None:
        label = f"{role} ({source.name})"
    else:
        label = "SevenNet-0" if source.name == "sevennet-0" else source.name
        label = label if role == "teacher" else f"{role} ({label})"
    name = source.name if source.entry else Path(source.name).stem
    ev = model_evaluator(model, label, _description(source, model), name=name)
    ev.remote = {"spec": str(Path(spec).resolve()) if source.entry is None else str(spec), "role": role,
                 "device": device}  # fmt: skip
    return ev


def remote_evaluator(remote: Mapping[str, Any]) -> Evaluator:
    """The evaluator described by `Evaluator.remote`, built once per process (on a Dask worker: once per
    worker, whatever the number of tasks)."""
    from calculators.distributed import worker_cached

    key = ("screening-evaluator", tuple(sorted((k, str(v)) for k, v in remote.items())))
    if remote.get("spec") == "random":
        return worker_cached(key, lambda: resolve_student("random", device=remote["device"], seed=remote["seed"])[0])
    return worker_cached(key, lambda: _evaluator(remote["spec"], remote["role"], remote["device"]))


def resolve_teacher(spec: str | Path = "sevennet-0", *, device: str = "cpu") -> Evaluator:
    """Teacher by registry name (default SevenNet-0, offline) or GemNet-OC checkpoint path."""
    return _evaluator(spec, "teacher", device)


def resolve_student(
    spec: str | Path | None = None, *, device: str = "cpu", seed: int = 0
) -> tuple[Evaluator | None, str | None]:
    """Student and, when there is none, why. `None`/"auto": the shipped default student if installed, else
    (None, reason) → teacher-only run. "none": teacher-only. "random": the GemNet-OC student preset with random
    weights (seed), labelled as such — a plumbing check, not a result. Otherwise a checkpoint path or name."""
    if spec is None or str(spec) == "auto":
        if not loading.DEFAULT_STUDENT.is_file():
            return None, (
                f"no default student is installed ({loading.DEFAULT_STUDENT.name} is missing: reinstall catdistill, "
                "or make one with `distill generate`, `distill label`, `distill train`); pass --student PATH.pt, or "
                "--student random for an untrained plumbing check"
            )
        ev = _evaluator(DEFAULT_STUDENT_NAME, "student", device)
        ev.label = "student (default)"
        return ev, None
    if str(spec) == "none":
        return None, "teacher-only run requested (--student none)"
    if str(spec) == "random":
        torch.manual_seed(seed)
        model = GemNetOC(preset("gemnet-oc-student")).eval()
        desc = {
            "kind": "gemnet-oc-student preset, RANDOM WEIGHTS (untrained; plumbing check only)",
            "seed": seed,
            "parameters": int(model.num_parameters()),
        }
        ev = model_evaluator(model, "student (random weights)", desc, name=f"random-student-{seed}")
        ev.remote = {"spec": "random", "role": "student", "device": device, "seed": seed}
        return ev, None
    return _evaluator(spec, "student", device), None


def resolve_models(
    teacher: str | Path, student: str | Path | None, *, need_student: bool = False, device: str = "cpu"
) -> tuple[Evaluator, Evaluator | None, str | None]:
    """(teacher, student or None, why there is no student) for command-line values; `ValueError` when
    `need_student` and there is none."""
    t = resolve_teacher(teacher, device=device)
    s, reason = resolve_student(student, device=device)
    if need_student and s is None:
        raise ValueError(f"a student is needed: {reason}")
    return t, s, reason
