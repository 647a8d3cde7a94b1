"""GemNet-OC hyperparameters (fairchem's constructor names) and named presets."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from calculators.parsing import dataclass_from_dict


@dataclass
class GemNetOCConfig:
    """Hyperparameters of a GemNet-OC model; names and defaults follow fairchem's `GemNetOC` constructor.

    Cutoffs are in Å. `None` for the interaction-specific cutoffs / neighbour limits means "same as the main
    graph" (or the largest of the others for the atom-atom graph), as in the reference.
    """

    num_spherical: int = 7
    num_radial: int = 128
    num_blocks: int = 4
    emb_size_atom: int = 256
    emb_size_edge: int = 512
    emb_size_trip_in: int = 64
    emb_size_trip_out: int = 64
    emb_size_quad_in: int = 32
    emb_size_quad_out: int = 32
    emb_size_aint_in: int = 64
    emb_size_aint_out: int = 64
    emb_size_rbf: int = 16
    emb_size_cbf: int = 16
    emb_size_sbf: int = 32
    num_before_skip: int = 2
    num_after_skip: int = 2
    num_concat: int = 1
    num_atom: int = 3
    num_output_afteratom: int = 3
    num_atom_emb_layers: int = 0
    num_global_out_layers: int = 2
    regress_forces: bool = True
    direct_forces: bool = False
    cutoff: float = 6.0
    cutoff_qint: float | None = None
    cutoff_aeaint: float | None = None
    cutoff_aint: float | None = None
    max_neighbors: int = 50
    max_neighbors_qint: int | None = None
    max_neighbors_aeaint: int | None = None
    max_neighbors_aint: int | None = None
    enforce_max_neighbors_strictly: bool = True
    rbf: dict = field(default_factory=lambda: {"name": "gaussian"})
    rbf_spherical: dict | None = None
    envelope: dict = field(default_factory=lambda: {"name": "polynomial", "exponent": 5})
    cbf: dict = field(default_factory=lambda: {"name": "spherical_harmonics"})
    sbf: dict = field(default_factory=lambda: {"name": "spherical_harmonics"})
    extensive: bool = True
    forces_coupled: bool = False
    output_init: str = "HeOrthogonal"
    activation: str = "silu"
    quad_interaction: bool = False
    atom_edge_interaction: bool = False
    edge_atom_interaction: bool = False
    atom_interaction: bool = False
    scale_basis: bool = False
    qint_tags: list[int] = field(default_factory=lambda: [0, 1, 2])
    num_elements: int = 83
    # Project extension (not a fairchem argument): how the max-neighbour-truncated main graph is made symmetric.
    # "reference" mirrors fairchem (depends on atom order when truncation is active); "union" keeps every pair
    # selected in either direction (permutation invariant); "mutual" keeps pairs selected from both ends (also
    # permutation invariant, fewer edges and triplets). Fairchem checkpoints always load as "reference".
    neighbor_symmetrization: str = "reference"
    # Project extension: per-element reference energies E_ref(Z) in eV, index Z-1 (length num_elements), added to
    # every atom's energy so that the network learns the residual (fitted by `distill.references`). None: none.
    element_references: list[float] | None = None
    # Project extension: direct forces only: subtract each structure's mean force. The forces of any
    # translation-invariant energy sum to zero over a structure (fixed atoms included), so this projects the
    # predicted forces onto what exact ones satisfy (never a larger L2 error against conservative labels) and stops
    # a free molecule from drifting under a net force, which stalls ASE BFGS. False: fairchem's behaviour.
    zero_net_force: bool = False

    # -------------------------------------------------------------------------------------- derived values
    def resolved_cutoffs(self) -> tuple[float, float, float, float]:
        """(main, quadruplet, atom-edge, atom-atom) cutoffs in Å after the reference's defaulting rules."""
        main = self.cutoff
        aeaint = (
            self.cutoff_aeaint
            if (self.atom_edge_interaction or self.edge_atom_interaction) and self.cutoff_aeaint is not None
            else main
        )
        qint = self.cutoff_qint if self.quad_interaction and self.cutoff_qint is not None else main
        aint = self.cutoff_aint if self.atom_interaction and self.cutoff_aint is not None else max(main, aeaint, qint)
        if not (main <= aint and aeaint <= aint and qint <= aint):
            raise ValueError("the atom-atom cutoff must be the largest cutoff")
        if self.neighbor_symmetrization not in ("reference", "union", "mutual"):
            raise ValueError("neighbor_symmetrization must be 'reference', 'union' or 'mutual'")
        return main, qint, aeaint, aint

    def resolved_max_neighbors(self) -> tuple[int, int, int, int]:
        """(main, quadruplet, atom-edge, atom-atom) neighbour limits after the reference's defaulting rules."""
        main = self.max_neighbors
        aeaint = (
            self.max_neighbors_aeaint
            if (self.atom_edge_interaction or self.edge_atom_interaction) and self.max_neighbors_aeaint is not None
            else main
        )
        qint = self.max_neighbors_qint if self.quad_interaction and self.max_neighbors_qint is not None else main
        aint = (
            self.max_neighbors_aint
            if self.atom_interaction and self.max_neighbors_aint is not None
            else max(main, aeaint, qint)
        )
        if not (main <= aint and aeaint <= aint and qint <= aint):
            raise ValueError("the atom-atom neighbour limit must be the largest limit")
        return main, qint, aeaint, aint

    @property
    def uses_atom_graph(self) -> bool:
        return self.atom_edge_interaction or self.edge_atom_interaction or self.atom_interaction

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, strict: bool = True) -> GemNetOCConfig:
        """Build from a dict of constructor arguments. Unknown keys raise unless `strict=False`."""
        ignorable = {
            "name",
            "model",
            "otf_graph",
            "use_pbc",
            "use_pbc_single",
            "scale_file",
            "scale_backprop_forces",
        }
        return dataclass_from_dict(cls, values, what="GemNet-OC hyperparameters", ignore=ignorable if strict else None)


# Hyperparameters of fairchem's OC20+OC22 GemNet-OC (configs/oc22/s2ef/gemnet-oc/gemnet_oc_oc20_oc22.yml).
_TEACHER = dict(
    num_spherical=7, num_radial=128, num_blocks=4, emb_size_atom=256, emb_size_edge=512,
    emb_size_trip_in=64, emb_size_trip_out=64, emb_size_quad_in=32, emb_size_quad_out=32,
    emb_size_aint_in=64, emb_size_aint_out=64, emb_size_rbf=16, emb_size_cbf=16, emb_size_sbf=32,
    num_before_skip=2, num_after_skip=2, num_concat=1, num_atom=3, num_output_afteratom=3,
    cutoff=12.0, cutoff_qint=12.0, cutoff_aeaint=12.0, cutoff_aint=12.0,
    max_neighbors=30, max_neighbors_qint=8, max_neighbors_aeaint=20, max_neighbors_aint=1000,
    rbf={"name": "gaussian"}, envelope={"name": "polynomial", "exponent": 5},
    cbf={"name": "spherical_harmonics"}, sbf={"name": "legendre_outer"},
    extensive=True, output_init="HeOrthogonal", activation="silu", direct_forces=True, forces_coupled=False,
    quad_interaction=True, atom_edge_interaction=True, edge_atom_interaction=True, atom_interaction=True,
    num_atom_emb_layers=2, num_global_out_layers=2, qint_tags=[1, 2],
)  # fmt: skip

# Student: 2 blocks, atom 128 / edge 64, 6 Å main graph with 16 neighbours, no quadruplets, direct forces
# (~1.03M parameters). Edge width dominates the cost (every edge runs ~20 dense layers), so the parameters sit
# in the per-atom layers instead.
_STUDENT = dict(
    num_spherical=7, num_radial=64, num_blocks=2, emb_size_atom=128, emb_size_edge=64,
    emb_size_trip_in=32, emb_size_trip_out=32, emb_size_quad_in=16, emb_size_quad_out=16,
    emb_size_aint_in=32, emb_size_aint_out=32, emb_size_rbf=16, emb_size_cbf=16, emb_size_sbf=32,
    num_before_skip=1, num_after_skip=1, num_concat=1, num_atom=2, num_output_afteratom=2,
    cutoff=6.0, max_neighbors=16,
    rbf={"name": "gaussian"}, envelope={"name": "polynomial", "exponent": 5},
    cbf={"name": "spherical_harmonics"}, sbf={"name": "legendre_outer"},
    extensive=True, direct_forces=True, quad_interaction=False,
    atom_edge_interaction=False, edge_atom_interaction=False, atom_interaction=False,
    num_atom_emb_layers=1, num_global_out_layers=2, qint_tags=[1, 2], neighbor_symmetrization="union",
    # keep every neighbour within 0.01 of the cut instead of choosing among (near-)ties: with a strict cut, exactly
    # equidistant neighbours (ideal slabs, periodic images) are split by rounding, and the energy then depends on
    # orientation
    enforce_max_neighbors_strictly=False,
    # direct forces minus each structure's mean force (exact forces sum to zero; see GemNetOCConfig.zero_net_force)
    zero_net_force=True,
)  # fmt: skip

# Faster students for the speed/accuracy table (benchmarks/student_presets.py): the triplet count (~ Σ degree²)
# is the lever, so a 5 Å / 12-neighbour graph that keeps mutual neighbours only (the union of the non-strict cut
# made low-coordinated atoms hubs with 27 edges on an ideal Pt(111) slab; mutual: 588 edges and 8,982 triplets
# for the 37-atom Pt(111)+O slab instead of 1,008 and 26,556); "-fast" also halves the edge and triplet widths.
_STUDENT_5A = {**_STUDENT, "cutoff": 5.0, "max_neighbors": 12, "neighbor_symmetrization": "mutual"}
_STUDENT_FAST = {
    **_STUDENT_5A, "emb_size_edge": 32, "emb_size_trip_in": 16, "emb_size_trip_out": 16, "num_radial": 32,
    "emb_size_cbf": 8,
}  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    "gemnet-oc-large": _TEACHER,
    "gemnet-oc-student": _STUDENT,
    "gemnet-oc-student-5a": _STUDENT_5A,
    "gemnet-oc-student-fast": _STUDENT_FAST,
    # forces = −∂E/∂x on the fast graph (the neighbour limit makes E jump where the ranking changes; compare its
    # relaxations with the direct-force preset's in benchmarks/student_presets.py)
    "gemnet-oc-student-fast-conservative": {**_STUDENT_FAST, "direct_forces": False, "zero_net_force": False},
    # Energy-conserving student (forces = −∂E/∂positions) on a smooth energy surface: no max-neighbour cut (a cut
    # makes E jump when the neighbour ranking changes), so a shorter 5 Å cutoff keeps the graph affordable.
    "gemnet-oc-student-conservative": {
        **_STUDENT,
        "direct_forces": False,
        "zero_net_force": False,
        "cutoff": 5.0,
        "max_neighbors": 1000,
    },
}


def preset(name: str, **overrides: Any) -> GemNetOCConfig:
    """Config of a named preset (see `PRESETS`), with optional overrides."""
    if name not in PRESETS:
        raise KeyError(f"unknown GemNet-OC preset {name!r}; choose from {sorted(PRESETS)}")
    return GemNetOCConfig.from_dict({**PRESETS[name], **overrides})
