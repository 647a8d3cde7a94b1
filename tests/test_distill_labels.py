"""Teacher-label cache: content, atomic chunks, resume after a kill, refusal to mix teachers or settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gemnet_helpers import pt_slab_o, tiny_model

from distill.labels import CacheMismatchError, LabelCache, LabelSettings, collate, label_structures

# no quadruplet / atom-edge / edge-atom / atom-atom interactions: a fast conservative tiny teacher
CHEAP = dict(
    direct_forces=False, num_blocks=1, quad_interaction=False, atom_edge_interaction=False,
    edge_atom_interaction=False, atom_interaction=False,
)  # fmt: skip


class CountingTeacher(torch.nn.Module):
    """A tiny conservative GemNet-OC as teacher, counting the structures it labels (main calls only)."""

    conservative = True
    cutoff = 5.0
    max_atomic_number = 83

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.model = tiny_model(seed=seed, dtype=torch.float32, **CHEAP)
        self.labelled = 0

    def predict(self, batch, *, forces=True, features=False):
        if features:
            self.labelled += batch.num_structures
        return self.model.predict(batch, forces=forces, features=features)


def _structures(n=5):
    return [pt_slab_o(size=(1, 1, 2), seed=i) for i in range(n)]


def test_labels_content_and_collate(tmp_path):
    teacher = CountingTeacher()
    structures = _structures(3)
    cache = label_structures(structures, teacher, tmp_path, LabelSettings(chunk_size=2, hessian_rows=2))
    assert cache.complete and len(cache.done_chunks()) == 2
    recs = cache.records()
    assert len(recs) == 3
    ref = teacher.model.predict(__import__("calculators.batch").batch.AtomsBatch.from_atoms(structures[2]))
    torch.testing.assert_close(recs[2]["energy"], ref["energy"][0])
    assert recs[0]["hessian_rows"].shape == (2, 3 * len(structures[0]))
    for p in tmp_path.glob("chunk_*.pt"):
        torch.load(p, weights_only=True)
    batch, labels = collate(recs)
    assert labels["forces"].shape == (batch.num_atoms, 3)
    assert labels["hessian_rows"].shape == (3, 2, 3 * int(batch.natoms.max()))
    assert labels["node_features"].shape[0] == batch.num_atoms


def test_labelling_resumes_after_kill(tmp_path):
    structures = _structures(5)
    settings = LabelSettings(chunk_size=2, hessian_rows=1)
    teacher = CountingTeacher()

    def boom(k):
        if k == 0:
            raise KeyboardInterrupt("killed after chunk 0")

    with pytest.raises(KeyboardInterrupt):
        label_structures(structures, teacher, tmp_path, settings, on_chunk=boom)
    assert teacher.labelled == 2 and LabelCache(tmp_path).done_chunks() == [0]
    assert not list(tmp_path.glob("*.tmp"))
    label_structures(structures, teacher, tmp_path, settings)
    assert teacher.labelled == 5  # only the 3 remaining structures were labelled again
    assert len(LabelCache(tmp_path).records()) == 5
    label_structures(structures, teacher, tmp_path, settings)
    assert teacher.labelled == 5


def test_cache_refuses_to_mix(tmp_path):
    structures = _structures(2)
    label_structures(structures, CountingTeacher(0), tmp_path, LabelSettings(chunk_size=2, hessian_rows=0))
    with pytest.raises(CacheMismatchError, match="teacher"):
        label_structures(structures, CountingTeacher(1), tmp_path, LabelSettings(chunk_size=2, hessian_rows=0))
    with pytest.raises(CacheMismatchError, match="settings"):
        label_structures(structures, CountingTeacher(0), tmp_path, LabelSettings(chunk_size=2, hessian_rows=1))
    with pytest.raises(CacheMismatchError, match="structures"):
        label_structures(_structures(3)[1:], CountingTeacher(0), tmp_path, LabelSettings(chunk_size=2, hessian_rows=0))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "weights_sha256" in manifest["teacher"] and manifest["settings"]["hessian_rows"] == 0


def test_generated_training_set_is_reproducible():
    """Label-cache manifests record this hash: the same (n, seed) gives the same structures in a fresh interpreter,
    gas references (rattled copies of the molecules) included; another seed gives others. (Not a stored hash: at
    1e-8 Å it follows the numpy/ASE versions, which an install does not pin.)"""
    import subprocess
    import sys

    from ase.build import molecule

    from calculators.hashing import structures_sha256
    from distill.data import generate_structures

    structures = generate_structures(40, 0)
    gas = [a for a in structures if a.info.get("kind") == "gas"]
    assert len(gas) == 2 and gas[0].info["rattle"] == 0.05
    for a in gas:  # rattled: moved, by less than a bond stretch
        ref = molecule(a.info["gas"])
        assert ref.get_chemical_symbols() == a.get_chemical_symbols()
        shift = np.abs((a.positions - a.positions.mean(0)) - (ref.positions - ref.positions.mean(0))).max()
        assert 0 < shift < 0.5
    code = "from calculators.hashing import structures_sha256 as h; from distill.data import generate_structures as g"
    fresh = subprocess.run(
        [sys.executable, "-c", f"{code}; print(h(g(40, 0)))"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert fresh == structures_sha256(structures)
    assert structures_sha256(generate_structures(40, 1)) != fresh
    # and the set itself has not changed: a stored summary made with this code, compared to 1e-4 Å
    stored = json.loads((Path(__file__).parent / "fixtures" / "generated_set_n40_seed0.json").read_text())
    assert [a.get_chemical_formula() for a in structures] == [r["formula"] for r in stored["structures"]]
    np.testing.assert_allclose(
        [a.positions.sum(0) for a in structures], [r["position_sum"] for r in stored["structures"]], atol=1e-4
    )
    np.testing.assert_allclose(
        [abs(a.cell.volume) for a in structures], [r["volume"] for r in stored["structures"]], atol=1e-4
    )


def test_labelling_warns_once_about_overlapping_atoms_and_skips_unusable_cells():
    """Overlapping atoms get one UnphysicalStructureWarning for the whole call; a structure validation refuses
    (a degenerate cell, where a neighbour search would not end) is left to the labelling's own error."""
    import warnings

    from ase import Atoms

    from calculators.batch import UnphysicalStructureWarning
    from distill.labels import _warn_unphysical

    good = Atoms("Pt2", positions=[[0, 0, 0], [2.8, 0, 0]], cell=[10, 10, 10], pbc=True)
    close = Atoms("Pt2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=[10, 10, 10], pbc=True)
    degenerate = Atoms("H", cell=[[3, 0, 0], [3, 1e-7, 0], [0, 0, 3]], pbc=True)
    structures = [good, close, degenerate, close]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _warn_unphysical(range(4), structures)
    unphysical = [w for w in caught if issubclass(w.category, UnphysicalStructureWarning)]
    assert len(unphysical) == 1 and "2 of 4 structures" in str(unphysical[0].message)
    assert "structure 1:" in str(unphysical[0].message)
