"""Block reduction of a GemNet-OC teacher and the per-block importance report."""

from __future__ import annotations

import pytest
import torch
from gemnet_helpers import pt_slab_o, tiny_model

from calculators.batch import AtomsBatch
from distill.prune import block_importance, importance_report, prune_blocks


@pytest.fixture(scope="module")
def model():
    return tiny_model(num_blocks=3)


def test_keep_all_blocks_is_exact(model):
    batch = AtomsBatch.from_atoms([pt_slab_o()], dtype=torch.float64)
    same = prune_blocks(model, 3).eval()
    a, b = model.predict(batch), same.predict(batch)
    torch.testing.assert_close(a["energy"], b["energy"], rtol=0, atol=0)
    torch.testing.assert_close(a["forces"], b["forces"], rtol=0, atol=0)


def test_pruned_model_runs_and_is_smaller(model, tmp_path):
    from calculators.gemnet.checkpoint import load_project_checkpoint, save_checkpoint

    small = prune_blocks(model, 1)
    assert small.config.num_blocks == 1 and small.num_parameters() < model.num_parameters()
    save_checkpoint(small, tmp_path / "p.pt", {"parent": "tiny"})
    loaded, _ = load_project_checkpoint(tmp_path / "p.pt")
    batch = AtomsBatch.from_atoms([pt_slab_o()], dtype=torch.float64)
    out = loaded.to(torch.float64).predict(batch)
    direct = small.to(torch.float64).eval().predict(batch)  # the saved checkpoint is the pruned model, exactly
    torch.testing.assert_close(out["energy"], direct["energy"], rtol=0, atol=0)
    torch.testing.assert_close(out["forces"], direct["forces"], rtol=0, atol=0)
    torch.testing.assert_close(small.atom_emb.embeddings.weight, model.atom_emb.embeddings.weight)
    w_old, w_new = model.out_mlp_E[0].linear.weight, small.out_mlp_E[0].linear.weight
    torch.testing.assert_close(w_new, w_old[:, : w_new.shape[1]])
    skip = prune_blocks(model, [0, 2])  # arbitrary subsets work too
    torch.testing.assert_close(skip.int_blocks[1].state_dict(), model.int_blocks[2].state_dict())
    with pytest.raises(ValueError):
        prune_blocks(model, [3])


def test_block_importance(model):
    batch = AtomsBatch.from_atoms([pt_slab_o()], dtype=torch.float64)
    scores = block_importance(model, batch)
    assert len(scores) == 4 and abs(sum(scores) - 1) < 1e-9 and all(s >= 0 for s in scores)
    assert "embedding" in importance_report(scores)
