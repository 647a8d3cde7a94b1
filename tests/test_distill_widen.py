"""Function-preserving widening of a student (distill.widen, `distill widen`)."""

from __future__ import annotations

import pytest
import torch
from gemnet_helpers import pt_slab_o, tiny_model
from typer.testing import CliRunner

from calculators.batch import AtomsBatch
from calculators.keys import ATOM_ENERGIES, ENERGY, FORCES
from distill.widen import deepen, widen

FAST_LIKE = dict(quad_interaction=False, atom_edge_interaction=False, edge_atom_interaction=False,
                 atom_interaction=False, neighbor_symmetrization="mutual")  # fmt: skip


def _student(**over):
    refs = [0.0] * 83
    refs[0], refs[7], refs[77] = -3.4, -7.1, -6.0  # H, O, Pt
    return tiny_model(seed=4, **FAST_LIKE, element_references=refs, **over)


def _batch():
    return AtomsBatch.from_atoms([pt_slab_o(seed=2), pt_slab_o(size=(2, 2, 2), seed=5)], dtype=torch.float64)


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize(
    "widths", [dict(emb_size_edge=40), dict(emb_size_atom=28), dict(emb_size_atom=20, emb_size_edge=32)]
)
def test_widening_keeps_energies_and_forces(direct, widths):
    model = _student(direct_forces=direct)
    wide = widen(model, **widths, seed=1)
    assert wide.num_parameters() > model.num_parameters()
    assert all(getattr(wide.config, k) == v for k, v in widths.items())
    a, b = model.predict(_batch()), wide.predict(_batch())
    for key in (ENERGY, ATOM_ENERGIES, FORCES):
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-10)


def test_new_channels_are_live_and_learn():
    """New channels carry non-zero activations, and the zero weights that read them get gradients at once."""
    model = _student()
    wide = widen(model, emb_size_edge=40, emb_size_atom=24, seed=1).train()
    out = wide(_batch(), forces=True)
    (out[ENERGY].sum() + out[FORCES].square().sum()).backward()
    down = wide.int_blocks[0].trip_interaction.down_projection.linear.weight  # reads the edge channels
    assert torch.all(down.detach()[:, 24:] == 0) and down.grad[:, 24:].abs().max() > 0
    head = wide.out_blocks[1].layers[0].linear.weight  # atom rows of the atom update: new rows initialised
    assert head.detach()[16:].abs().max() > 0
    emb = wide.atom_emb.embeddings.weight
    assert emb.detach()[:, 16:].abs().max() > 0


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("preset", ["fast", "full"])
def test_deepening_keeps_energies_and_forces(direct, preset):
    model = _student(direct_forces=direct) if preset == "fast" else tiny_model(seed=3, direct_forces=direct)
    deep = deepen(model, num_blocks=model.config.num_blocks + 2)
    assert deep.config.num_blocks == model.config.num_blocks + 2 and len(deep.int_blocks) == len(model.int_blocks) + 2
    assert deep.num_parameters() > model.num_parameters()
    a, b = model.predict(_batch()), deep.predict(_batch())
    for key in (ENERGY, ATOM_ENERGIES, FORCES):
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-10)


def test_new_blocks_are_copies_that_learn():
    """The new block starts as a copy of the last trained one; the zero weights reading it get gradients at once."""
    model = _student()
    deep = deepen(model, num_blocks=model.config.num_blocks + 1).train()
    last, new = model.int_blocks[-1].state_dict(), deep.int_blocks[-1].state_dict()
    assert all(torch.equal(new[k], last[k]) for k in last)
    out = deep(_batch(), forces=True)
    (out[ENERGY].sum() + out[FORCES].square().sum()).backward()
    head = deep.out_mlp_E[0].linear.weight  # (atom, atom * (blocks + 1)): the last segment reads the new block
    width = model.config.emb_size_atom
    assert torch.all(head.detach()[:, -width:] == 0) and head.grad[:, -width:].abs().max() > 0
    with pytest.raises(ValueError, match="cannot remove"):
        deepen(model, num_blocks=model.config.num_blocks - 1)


def test_widening_rejects_shrinking_and_unsupported_presets():
    with pytest.raises(ValueError, match="cannot shrink"):
        widen(_student(), emb_size_edge=8)
    with pytest.raises(ValueError, match="quad_interaction"):
        widen(tiny_model(), emb_size_edge=32)
    with pytest.raises(ValueError, match="equal"):  # atom 16 / edge 24 -> 24 / 24
        widen(_student(), emb_size_atom=24)


def test_widen_command(tmp_path):
    from calculators.gemnet import load_project_checkpoint, save_checkpoint
    from distill.cli import app

    save_checkpoint(_student().float(), tmp_path / "student.pt")
    runner = CliRunner()
    res = runner.invoke(app, ["widen", str(tmp_path / "student.pt"), "-o", str(tmp_path / "wide.pt"), "--edge", "32"])
    assert res.exit_code == 0, res.output
    assert "edge 24 -> 32" in res.output
    ckpt = torch.load(tmp_path / "wide.pt", weights_only=True)
    assert ckpt["metadata"]["widened_from"]["emb_size_edge"] == 24
    assert len(ckpt["metadata"]["widened_from"]["sha256"]) == 64
    wide, _ = load_project_checkpoint(tmp_path / "wide.pt")
    assert wide.config.emb_size_edge == 32 and wide.config.element_references[7] == pytest.approx(-7.1)
    res = runner.invoke(app, ["widen", str(tmp_path / "student.pt"), "-o", str(tmp_path / "deep.pt"), "--blocks", "3"])
    assert res.exit_code == 0, res.output
    deep, _ = load_project_checkpoint(tmp_path / "deep.pt")
    assert deep.config.num_blocks == 3 and "blocks 2 -> 3" in res.output
    res = runner.invoke(app, ["widen", str(tmp_path / "student.pt"), "-o", str(tmp_path / "w2.pt")])
    assert res.exit_code == 2 and "nothing to widen" in res.output
    res = runner.invoke(app, ["widen", str(tmp_path / "student.pt"), "-o", str(tmp_path / "w3.pt"), "--atom", "4"])
    assert res.exit_code == 2 and "cannot shrink" in res.output and not (tmp_path / "w3.pt").exists()
