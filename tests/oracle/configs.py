"""GemNet-OC hyperparameters (fairchem constructor kwargs) used with the oracle."""

from __future__ import annotations

_COMMON = {
    "num_spherical": 7,
    "emb_size_rbf": 16,
    "emb_size_cbf": 16,
    "emb_size_sbf": 32,
    "num_before_skip": 2,
    "num_after_skip": 2,
    "num_concat": 1,
    "num_atom": 3,
    "num_output_afteratom": 3,
    "num_atom_emb_layers": 2,
    "num_global_out_layers": 2,
    "rbf": {"name": "gaussian"},
    "envelope": {"name": "polynomial", "exponent": 5},
    "cbf": {"name": "spherical_harmonics"},
    "sbf": {"name": "legendre_outer"},
    "extensive": True,
    "output_init": "HeOrthogonal",
    "activation": "silu",
    "regress_forces": True,
    "direct_forces": True,
    "forces_coupled": False,
    "atom_edge_interaction": True,
    "edge_atom_interaction": True,
    "atom_interaction": True,
    "qint_tags": [1, 2],
}

# configs/oc22/s2ef/gemnet-oc/gemnet_oc_oc20_oc22.yml (model section)
TEACHER = {
    **_COMMON,
    "num_radial": 128,
    "num_blocks": 4,
    "emb_size_atom": 256,
    "emb_size_edge": 512,
    "emb_size_trip_in": 64,
    "emb_size_trip_out": 64,
    "emb_size_quad_in": 32,
    "emb_size_quad_out": 32,
    "emb_size_aint_in": 64,
    "emb_size_aint_out": 64,
    "cutoff": 12.0,
    "cutoff_qint": 12.0,
    "cutoff_aeaint": 12.0,
    "cutoff_aint": 12.0,
    "max_neighbors": 30,
    "max_neighbors_qint": 8,
    "max_neighbors_aeaint": 20,
    "max_neighbors_aint": 1000,
    "quad_interaction": True,
}

# Student-size model of the smoke test (no quadruplets).
STUDENT = {
    **_COMMON,
    "num_radial": 64,
    "num_blocks": 2,
    "emb_size_atom": 64,
    "emb_size_edge": 64,
    "emb_size_trip_in": 32,
    "emb_size_trip_out": 32,
    "emb_size_quad_in": 32,
    "emb_size_quad_out": 32,
    "emb_size_aint_in": 32,
    "emb_size_aint_out": 32,
    "cutoff": 6.0,
    "max_neighbors": 30,
    "quad_interaction": False,
}
