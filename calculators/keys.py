"""The names of the tensors that models return and that label records hold: one spelling for every producer and
consumer (SevenNet's `_keys` style). Shapes: B structures, N atoms, E edges, n atoms of one structure, s sampled
Hessian rows."""

# ---------------------------------------------------------------------------- model outputs (`predict`)
ENERGY = "energy"  # (B,) eV, total energy per structure
FORCES = "forces"  # (N, 3) eV/Å
ATOM_ENERGIES = "atom_energies"  # (N,) eV, per-atom contributions summing to ENERGY
NODE_FEATURES = "node_features"  # (N, F) invariant atom embeddings (the input of the energy head)
EDGE_INDEX = "edge_index"  # (2, E) int64, [source, target] atoms of the model's main graph
H_BLOCKS = "h_blocks"  # GemNet-OC with features=True: list of (N, F) atom embeddings, one per block
HESSIAN = "hessian"  # not returned by predict: calculators.hessian.hessian_rows gives (B, s, 3n) eV/Å²

# ---------------------------------------------------------------------------- label records (`distill.labels`)
# One record per structure; the teacher's outputs keep the model-output names above (ENERGY () eV, FORCES (n, 3),
# ATOM_ENERGIES (n,), NODE_FEATURES (n, F)).
NUMBERS = "numbers"  # (n,) int64 atomic numbers
POSITIONS = "positions"  # (n, 3) float64, Å
CELL = "cell"  # (3, 3) float64, Å
PBC = "pbc"  # (3,) bool
TAGS = "tags"  # (n,) int64, 0 bulk / 1 surface / 2 adsorbate
FIXED = "fixed"  # (n,) bool, held by FixAtoms
HESSIAN_INDEX = "hessian_index"  # (s,) int64 flat rows 3*atom+xyz
HESSIAN_ROWS = "hessian_rows"  # (s, 3n) eV/Å², = −∂F_r/∂x
DFT_ENERGY = "dft_energy"  # () eV, when the input structure carries one (atoms.info["dft_energy"])
DFT_FORCES = "dft_forces"  # (n, 3) eV/Å (atoms.arrays["dft_forces"])
# adsorbate-removal pairs (`distill.pairs`): the teacher's labels of the same structure without its tag-2 atoms
PAIR_ENERGY = "pair_energy"  # () eV
PAIR_FORCES = "pair_forces"  # (m, 3) eV/Å, m = atoms not tagged 2
PAIR_INDEX = "pair_index"  # batch label (P, 2) int64: [adslab, stripped slab] structure indices in the batch
# batch label () int64: the per-structure labels that partners lack (atom energies, teacher features, Hessian rows)
# cover only the first LABELLED_STRUCTURES structures of the batch (the partners come after them)
LABELLED_STRUCTURES = "labelled_structures"
