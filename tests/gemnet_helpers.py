"""Small GemNet-OC configurations and structures shared by the model tests."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.build import add_adsorbate, fcc111, molecule

from calculators.gemnet import GemNetOC, GemNetOCConfig

# every interaction on (triplets, quadruplets, atom-edge, edge-atom, atom-atom), tiny sizes: exercises all code
TINY_FULL = dict(
    num_spherical=4, num_radial=8, num_blocks=2, emb_size_atom=16, emb_size_edge=24,
    emb_size_trip_in=8, emb_size_trip_out=8, emb_size_quad_in=4, emb_size_quad_out=4,
    emb_size_aint_in=8, emb_size_aint_out=8, emb_size_rbf=4, emb_size_cbf=4, emb_size_sbf=8,
    num_before_skip=1, num_after_skip=1, num_concat=1, num_atom=1, num_output_afteratom=1,
    num_atom_emb_layers=1, num_global_out_layers=1,
    cutoff=5.0, cutoff_qint=5.0, cutoff_aeaint=5.0, cutoff_aint=6.0,
    max_neighbors=14, max_neighbors_qint=6, max_neighbors_aeaint=10, max_neighbors_aint=40,
    sbf={"name": "legendre_outer"}, quad_interaction=True, atom_edge_interaction=True,
    edge_atom_interaction=True, atom_interaction=True, qint_tags=[1, 2], direct_forces=True,
    neighbor_symmetrization="union", enforce_max_neighbors_strictly=False,
)  # fmt: skip


def tiny_model(seed: int = 0, dtype=torch.float64, randomize_scales: bool = True, **overrides) -> GemNetOC:
    """A small all-interactions GemNet-OC with random weights (and random scale factors)."""
    torch.manual_seed(seed)
    model = GemNetOC(GemNetOCConfig.from_dict({**TINY_FULL, **overrides}))
    if randomize_scales:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("scale_factor"):
                    p.fill_(float(0.5 + torch.rand((), generator=gen)))
    return model.to(dtype).eval()


def pt_slab_o(size=(2, 2, 3), rattle: float = 0.05, seed: int = 1, vacuum: float = 6.0) -> Atoms:
    """Pt(111) slab with O in an fcc hollow; tags 0/1/2; slightly rattled so no neighbour distances tie."""
    slab = fcc111("Pt", size, vacuum=vacuum)
    add_adsorbate(slab, "O", 1.2, "fcc")
    if rattle:
        slab.rattle(rattle, seed=seed)
    return slab


def small_molecule_box() -> Atoms:
    """A CO molecule in a non-periodic box (pbc False)."""
    atoms = molecule("CO")
    atoms.center(vacuum=4.0)
    atoms.pbc = False
    atoms.set_tags(np.full(len(atoms), 2))
    return atoms
