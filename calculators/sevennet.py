"""SevenNet-0 (MPtrj universal potential, weights inside the `sevenn` wheel) as an `AtomisticModel`.

The adapter runs SevenNet's own modules (embedding, 5 interaction blocks, readout, species-wise rescale) on a
batched graph it builds itself from `NeighborCandidates`, then sums atomic energies per structure and takes
forces as −∂E/∂positions by autograd. It does not use SevenNet's force/stress output module, so it supports
candidate reuse (skin), batching over many structures and double backward (Hessian rows).
Energies are MPtrj-compatible DFT (PBE/PBE+U) total energies in eV; node features are the 128 invariant (0e)
channels entering SevenNet's energy readout.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from ase.data import chemical_symbols
from torch import nn

from calculators.batch import AtomsBatch, StructureError
from calculators.model_api import ATOM_ENERGIES, EDGE_INDEX, ENERGY, FORCES, NODE_FEATURES, NeighborCandidates
from calculators.neighbors import build_neighbors, select_within

_SKIP = ("force_output", "reduce_total_enegy", "reduce_total_energy")
_READOUT = "reduce_input_to_hidden"


class SevenNetModel(nn.Module):
    """`AtomisticModel` over a SevenNet `AtomGraphSequential` (default: the pretrained SevenNet-0, 11Jul2024).

    Args:
        name_or_path: sevenn pretrained name ("7net-0") or a SevenNet checkpoint path.
        device: torch device, e.g. "cpu".
        dtype: float dtype of the computation (SevenNet is trained in float32).
    """

    conservative = True
    supports_neighbors = True
    supports_create_graph = True
    supported_dtypes = (torch.float32,)  # e3nn compiles its linear layers for float32 at build time
    mptrj_energies = True  # trained on MPtrj: PBE and PBE+U energies mixed as Materials Project does

    def __init__(
        self,
        name_or_path: str = "7net-0",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if dtype not in self.supported_dtypes:
            raise ValueError(
                f"SevenNet runs in float32 only (e3nn compiles its kernels in float32), got {dtype}; "
                "calculators cast float64 inputs to float32 for it"
            )
        try:
            import sevenn._keys as keys
            import sevenn.util as sevenn_util
        except ImportError as err:  # pragma: no cover - sevenn is a main dependency
            raise ImportError("SevenNet teacher needs `sevenn==0.13.0` (pip install sevenn==0.13.0)") from err
        self._k = keys
        checkpoint = sevenn_util.load_checkpoint(name_or_path)
        net = checkpoint.build_model()
        if getattr(net, "modal_map", None):
            raise ValueError(f"{name_or_path} is a multi-fidelity SevenNet model; only single-modal ones are supported")
        net.set_is_batch_data(True)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net.to(device=device, dtype=dtype)
        self.name = str(name_or_path)
        self.cutoff = float(checkpoint.config[keys.CUTOFF])
        self.type_map: dict[int, int] = {int(z): int(i) for z, i in net.type_map.items()}
        self.max_atomic_number = max(self.type_map)
        self._known = torch.zeros(self.max_atomic_number + 1, dtype=torch.bool)
        self._known[list(self.type_map)] = True

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def _check_elements(self, z: torch.Tensor) -> None:
        zc = z.cpu()
        ok = (zc <= self.max_atomic_number) & (zc >= 1)
        ok[ok.clone()] = self._known[zc[ok]]
        if not bool(ok.all()):
            bad = sorted({int(v) for v in zc[~ok]})
            names = [chemical_symbols[v] if 0 < v < len(chemical_symbols) else str(v) for v in bad]
            raise StructureError(f"SevenNet model {self.name} has no embedding for element(s) {names} (Z={bad})")

    def predict(
        self,
        batch: AtomsBatch,
        *,
        forces: bool = True,
        features: bool = False,
        neighbors: NeighborCandidates | None = None,
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Energies (B,) eV, forces (N, 3) eV/Å, per-atom energies (N,) eV; with `features` node features
        (N, 128) and the edge index (2, E) of the cutoff graph."""
        k = self._k
        self._check_elements(batch.atomic_numbers)
        if batch.device != self.device or batch.dtype != self.dtype:
            batch = batch.to(self.device, self.dtype)
        if neighbors is None:
            neighbors = build_neighbors(batch, self.cutoff)
        pos = batch.positions
        if forces and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        view = replace(batch, positions=pos)
        with torch.enable_grad() if (forces or pos.requires_grad) else torch.no_grad():
            edge_index, vec = select_within(neighbors, view, self.cutoff)
            data: dict[str, torch.Tensor] = {
                k.ATOMIC_NUMBERS: batch.atomic_numbers,
                k.NODE_FEATURE: self.net._atomic_numbers_to_onehot(batch.atomic_numbers),
                k.EDGE_IDX: edge_index,
                k.EDGE_VEC: vec,
                k.BATCH: batch.batch,
                k.NUM_ATOMS: batch.natoms,
                k.POS: pos,
            }
            node_features = None
            for name, module in self.net._modules.items():
                if name in _SKIP:
                    continue
                if name == _READOUT:
                    node_features = data[k.NODE_FEATURE]
                data = module(data)
            atom_e = data[k.ATOMIC_ENERGY].reshape(-1)
            energy = torch.zeros(batch.num_structures, dtype=atom_e.dtype, device=atom_e.device)
            energy = energy.index_add(0, batch.batch, atom_e)
            out = {ENERGY: energy, ATOM_ENERGIES: atom_e}
            if forces:
                (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
                out[FORCES] = -grad
        if features:
            out[NODE_FEATURES] = node_features
            out[EDGE_INDEX] = edge_index
        if not create_graph:
            out = {key: v.detach() for key, v in out.items()}
        return out
