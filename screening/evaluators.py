"""Models for screening behind one small interface (`Evaluator`): energies of many structures (eV) and batched
relaxation, plus a description for reports (label, file, sha256, package version) and a fingerprint that keys
the per-run energy cache.

`resolve_teacher("sevennet-0" | path.pt)`, `resolve_student(None | "none" | "random" | path.pt | name)`:
a missing default student is not an error here — `resolve_student` returns (None, reason) and the run goes on
teacher-only, saying why in the report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from calculators.hashing import sha256_file


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
    -> RelaxOutcome list` (None: relaxation unsupported). `calls` counts energy_fn/relax_fn calls."""

    label: str
    fingerprint: str
    description: dict[str, Any]
    energy_fn: Callable[[Sequence[Atoms]], list[float]]
    relax_fn: Callable[[Sequence[Atoms], float, int], list[RelaxOutcome]] | None = None
    calls: int = field(default=0)

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


def model_evaluator(
    model: Any, label: str, fingerprint: str, description: Mapping[str, Any], batch_atoms: int | None = None
) -> Evaluator:
    """Evaluator over an `AtomisticModel` with `predict_many` (energy only) and `relax_many` (FIRE)."""
    from calculators.batched import predict_many, relax_many

    def energies(atoms_list: Sequence[Atoms]) -> list[float]:
        res = predict_many(model, list(atoms_list), batch_atoms=batch_atoms, forces=False, progress=False)
        return [float(r["energy"]) for r in res]

    def relax(atoms_list: Sequence[Atoms], fmax: float, max_steps: int) -> list[RelaxOutcome]:
        rr = relax_many(model, list(atoms_list), fmax=fmax, max_steps=max_steps, batch_atoms=batch_atoms)
        return [
            RelaxOutcome(float(e), bool(c), int(s), a.positions.copy())
            for a, c, s, e in zip(rr.atoms, rr.converged, rr.steps, rr.energies, strict=True)
        ]

    return Evaluator(label, fingerprint, dict(description), energies, relax)


def lookup_evaluator(energies: Mapping[str, float], key_fn: Callable[[Atoms], str], label: str = "lookup") -> Evaluator:
    """Evaluator returning stored energies (eV) by `key_fn(atoms)` (tests: the DFT energies of a dataset)."""
    table = dict(energies)
    fp = hashlib.sha256(repr(sorted(table.items())).encode()).hexdigest()
    return Evaluator(label, fp, {"kind": "lookup", "label": label}, lambda al: [table[key_fn(a)] for a in al])


def _load_checkpoint(path: Path, device: str, dtype: Any) -> Any:
    from calculators.gemnet.checkpoint import load_model

    return load_model(path, device=device, dtype=dtype)


def _checkpoint_evaluator(path: Path, role: str, device: str, dtype: Any, batch_atoms: int | None) -> Evaluator:
    model = _load_checkpoint(path, device, dtype)
    digest = sha256_file(path)
    desc = {
        "kind": "gemnet-oc checkpoint",
        "path": str(path),
        "sha256": digest,
        "parameters": int(model.num_parameters()),
    }
    label = f"{role} ({path.name})"
    return model_evaluator(model, label, f"ckpt-{digest}", desc, batch_atoms)


def resolve_teacher(
    spec: str | Path = "sevennet-0", *, device: str = "cpu", batch_atoms: int | None = None
) -> Evaluator:
    """Teacher by registry name (default SevenNet-0, offline) or GemNet-OC checkpoint path."""
    import torch

    path = Path(spec)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        if not path.is_file():
            raise FileNotFoundError(f"teacher checkpoint {path} does not exist")
        return _checkpoint_evaluator(path, "teacher", device, torch.float32, batch_atoms)
    from calculators.loading import load_teacher
    from calculators.registry import registry_entry

    key, entry = registry_entry(str(spec))
    model = load_teacher(key, device=device, dtype=torch.float32)
    desc: dict[str, Any] = {"kind": entry.get("architecture", "?"), "name": key}
    if isinstance(model, torch.nn.Module):
        desc["parameters"] = int(sum(p.numel() for p in model.parameters()))
    if entry.get("architecture") == "sevennet":
        import sevenn

        desc["package"] = f"sevenn=={sevenn.__version__}"
        desc["model"] = entry.get("sevenn_name", key)
        label = "SevenNet-0" if key == "sevennet-0" else key
        fp = f"{key}-sevenn-{sevenn.__version__}"
    else:
        from calculators.registry import cached_checkpoint

        ck = cached_checkpoint(key, None)
        desc["path"] = str(ck)
        desc["sha256"] = sha256_file(ck) if ck else None
        label, fp = key, f"{key}-{desc['sha256']}"
    return model_evaluator(model, label, fp, desc, batch_atoms)


def resolve_student(
    spec: str | Path | None = None, *, device: str = "cpu", batch_atoms: int | None = None, seed: int = 0
) -> tuple[Evaluator | None, str | None]:
    """Student and, when there is none, why. `None`/"auto": the shipped default student if installed, else
    (None, reason) → teacher-only run. "none": teacher-only. "random": the GemNet-OC student preset with random
    weights (seed), labelled as such — a plumbing check, not a result. Otherwise a checkpoint path or name."""
    import torch

    from calculators.calculators import DEFAULT_STUDENT

    if spec is None or str(spec) == "auto":
        if not DEFAULT_STUDENT.is_file():
            return None, (
                f"no default student is installed ({DEFAULT_STUDENT.name} missing: the distillation issue ships "
                "it); pass --student PATH.pt, or --student random for an untrained plumbing check"
            )
        ev = _checkpoint_evaluator(DEFAULT_STUDENT, "student", device, torch.float32, batch_atoms)
        ev.label = "student (default)"
        return ev, None
    if str(spec) == "none":
        return None, "teacher-only run requested (--student none)"
    if str(spec) == "random":
        from calculators.gemnet import GemNetOC, preset

        torch.manual_seed(seed)
        model = GemNetOC(preset("gemnet-oc-student")).eval()
        desc = {
            "kind": "gemnet-oc-student preset, RANDOM WEIGHTS (untrained; plumbing check only)",
            "seed": seed,
            "parameters": int(model.num_parameters()),
        }
        return model_evaluator(model, "student (random weights)", f"random-student-{seed}", desc, batch_atoms), None
    path = Path(spec)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        if not path.is_file():
            raise FileNotFoundError(f"student checkpoint {path} does not exist")
        return _checkpoint_evaluator(path, "student", device, torch.float32, batch_atoms), None
    ev = resolve_teacher(str(spec), device=device, batch_atoms=batch_atoms)
    ev.label = f"student ({ev.label})"
    return ev, None
