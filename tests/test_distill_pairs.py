"""Adsorbate-removal pairs: the stripped partner is the adslab without its adsorbate, labelled by the cache's
teacher, attached only to its own records, and the pair loss is the interaction-energy error."""

from __future__ import annotations

import csv

import pytest
import torch
from ase.build import fcc111
from gemnet_helpers import pt_slab_o, small_molecule_box
from test_distill_labels import CountingTeacher
from test_distill_train import SMALL

from calculators.batch import AtomsBatch
from calculators.keys import (
    ENERGY,
    FORCES,
    LABELLED_STRUCTURES,
    NODE_FEATURES,
    PAIR_ENERGY,
    PAIR_FORCES,
    PAIR_INDEX,
)
from distill.evaluate import interaction_energy_errors
from distill.labels import LabelCache, LabelSettings, collate, label_structures
from distill.losses import DistillationLoss, LossConfig
from distill.pairs import (
    PAIRS_FILE,
    attach_pairs,
    collate_with_partners,
    has_partner,
    label_pairs,
    pair_dir,
    records_with_pairs,
    stripped_record,
    with_partners,
)
from distill.train import TrainConfig, train


def _structures():
    clean = fcc111("Pt", (1, 1, 2), vacuum=6.0)
    clean.set_tags([1, 1])
    return [pt_slab_o(size=(1, 1, 2), seed=i) for i in range(3)] + [small_molecule_box(), clean]


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """(teacher, structures, source cache path, records with pairs attached)."""
    root = tmp_path_factory.mktemp("pairs")
    teacher = CountingTeacher()
    structures = _structures()
    label_structures(structures, teacher, root / "labels", LabelSettings(chunk_size=2, hessian_rows=0))
    label_pairs(root / "labels", teacher, chunk_size=2)
    return teacher, structures, root / "labels", records_with_pairs(root / "labels")


def test_partners_are_the_adslabs_without_their_adsorbate_labelled_by_the_teacher(paired):
    teacher, structures, source, records = paired
    assert (pair_dir(source) / PAIRS_FILE).is_file()
    assert [has_partner(r) for r in records] == [True, True, True, False, False]  # molecule and clean slab: none
    assert [PAIR_ENERGY in r for r in records] == [True, True, True, False, False]
    for atoms, rec in zip(structures[:3], records[:3], strict=False):
        slab = atoms[[t != 2 for t in atoms.get_tags()]]
        ref = teacher.model.predict(AtomsBatch.from_atoms(slab))
        torch.testing.assert_close(rec[PAIR_ENERGY], ref[ENERGY][0])
        torch.testing.assert_close(rec[PAIR_FORCES], ref[FORCES])
        assert len(stripped_record(rec)["numbers"]) == len(atoms) - 1


def test_pairs_refuse_other_structures_and_resume(paired, tmp_path):
    teacher, _, source, _ = paired
    other = [pt_slab_o(size=(1, 1, 2), seed=10 + i) for i in range(3)]
    cache = label_structures(other, teacher, tmp_path / "other", LabelSettings(chunk_size=2, hessian_rows=0))
    with pytest.raises(ValueError, match="other structures"):
        attach_pairs(cache.records(), cache.manifest, pair_dir(source))
    before = teacher.labelled
    label_pairs(source, teacher, chunk_size=2)  # finished: nothing labelled again
    assert teacher.labelled == before
    assert LabelCache(pair_dir(source)).complete


def test_pair_loss_is_the_interaction_energy_error(paired):
    teacher, _, _, records = paired
    both, index = with_partners(records)
    assert index.tolist() == [[0, 5], [1, 6], [2, 7]]
    batch, labels = collate(both)
    labels[PAIR_INDEX] = index
    loss = DistillationLoss(LossConfig(energy=1.0, forces=1.0, pair=1.0), 8)
    _, terms = loss(teacher.model, batch, labels)
    assert terms["pair"] == pytest.approx(0.0, abs=1e-4)  # the teacher reproduces its own interaction energies
    student = CountingTeacher(seed=3).model
    _, terms = loss(student, batch, labels)
    errors = interaction_energy_errors(student, records)
    assert len(errors) == 3 and terms["pair"] == pytest.approx(float(errors.mean()), rel=1e-4)
    assert terms["pair"] > 1e-3
    with pytest.raises(ValueError, match="pair loss"):
        DistillationLoss(LossConfig(pair=1.0, targets="dft"), 8)


def test_pair_loss_keeps_the_feature_atomic_and_hessian_losses_of_the_adslabs(tmp_path):
    """Partners lack features, atom energies and Hessian rows: with pairs those terms are computed on the
    original records alone and equal the terms of the same records without partners."""
    teacher = CountingTeacher()
    label_structures(_structures(), teacher, tmp_path / "labels", LabelSettings(chunk_size=2, hessian_rows=2))
    label_pairs(tmp_path / "labels", teacher, chunk_size=2)
    records = records_with_pairs(tmp_path / "labels")
    width = int(records[0][NODE_FEATURES].shape[1])
    student = CountingTeacher(seed=3).model
    weights = dict(energy=1.0, forces=1.0, n2n=1.0, fork=1.0, atomic=1.0, hessian=1.0)
    torch.manual_seed(0)
    with_pairs = DistillationLoss(LossConfig(pair=1.0, **weights), width, width)
    alone = DistillationLoss(LossConfig(**weights), width, width)
    alone.load_state_dict(with_pairs.state_dict())  # same projection heads
    batch, labels = collate_with_partners(records)
    assert batch.num_structures == 8 and int(labels[LABELLED_STRUCTURES]) == 5
    _, paired_terms = with_pairs(student, batch, labels, torch.Generator().manual_seed(1))
    _, own_terms = alone(student, *collate(records), torch.Generator().manual_seed(1))
    for key in ("n2n", "atomic", "hessian"):
        assert paired_terms[key] > 0
        assert paired_terms[key] == pytest.approx(own_terms[key], rel=1e-4), key
    # FORK too: the symmetry-equivalent atoms of these tiny slabs give near-zero teacher relational vectors whose
    # directions follow the batched forward's float noise; fork_loss leaves those pairs out (min_norm)
    assert paired_terms["fork"] == pytest.approx(own_terms["fork"], rel=1e-4)
    assert paired_terms["pair"] > 1e-3 and "pair" not in own_terms


def test_training_with_the_pair_loss_logs_and_validates_it(paired, tmp_path):
    _, _, _, records = paired
    config = TrainConfig(
        student_overrides=SMALL, losses=LossConfig(energy=1.0, forces=1.0, pair=1.0), max_steps=4, warmup_steps=1,
        batch_size=2, eval_every=2, checkpoint_every=2, progress=False,
    )  # fmt: skip
    result = train(config, records[1:], tmp_path, val_records=records[:1])
    assert result["validation"]["num_pairs"] == 1 and result["validation"]["pair_mae"] >= 0
    with (tmp_path / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("pair") for r in rows) and rows[-1]["val_pair_mae"]
