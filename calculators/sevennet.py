"""SevenNet-0 (MPtrj universal potential, weights inside the `sevenn` wheel) as an `AtomisticModel`.

The adapter runs SevenNet's own modules (embedding, 5 interaction blocks, readout, species-wise rescale) on a
batched graph it builds itself from `NeighborCandidates`, then sums atomic energies per structure and takes
forces as −∂E/∂positions by autograd. It does not use SevenNet's force/stress output module, so it supports
candidate reuse (skin), batching over many structures and double backward (Hessian rows).
Energies are MPtrj-compatible DFT (PBE/PBE+U) total energies in eV; node features are the 128 invariant (0e)
channels entering SevenNet's energy readout.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.data import chemical_symbols
from torch import nn

from calculators.batch import AtomsBatch, StructureError
from calculators.files import first_reason, refused_pickle_detail
from calculators.model_api import ATOM_ENERGIES, EDGE_INDEX, ENERGY, FORCES, NODE_FEATURES, NeighborCandidates
from calculators.neighbors import build_neighbors, select_within
from calculators.registry import load_registry

_SKIP = ("force_output", "reduce_total_enegy", "reduce_total_energy")
_READOUT = "reduce_input_to_hidden"


class UnsafeCheckpointError(ValueError):
    """A checkpoint that would have to run code to load (pickled objects), or a registered file whose sha256 does
    not match the registry: refused, never unpickled."""


def _numpy_safe_globals() -> list[Any]:
    """What a SevenNet checkpoint holds besides tensors: numpy arrays of plain numeric dtypes (never objects)."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    dtypes = [type(np.dtype(t)) for t in ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")]
    return [(_reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, *dtypes]


def _weights_only_load(data: bytes, where: str) -> dict[str, Any]:
    """`torch.load(weights_only=True)` of a SevenNet checkpoint's bytes (numpy arrays allowed); anything that
    would need code to unpickle is refused with `UnsafeCheckpointError`."""
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for refused globals; anything else: not a checkpoint
        detail = refused_pickle_detail(err)
        if detail is not None:
            raise UnsafeCheckpointError(
                f"refusing to load {where}: it holds pickled objects that only code execution could rebuild "
                f"({detail}). SevenNet checkpoints are loaded weights-only (tensors, numpy arrays, plain data), so "
                "a crafted file cannot run code; re-save a trusted checkpoint's plain contents, or use a registry "
                "name (sevennet-0)"
            ) from None
        raise UnsafeCheckpointError(
            f"{where} is not a readable SevenNet checkpoint ({type(err).__name__}: {first_reason(err)})"
        ) from None
    if not isinstance(obj, dict) or "model_state_dict" not in obj or "config" not in obj:
        raise UnsafeCheckpointError(f"{where} is not a SevenNet checkpoint (expected model_state_dict and config)")
    return obj


def _registered_sevenn_file(name: str) -> tuple[str, str, str | None] | None:
    """(registry key, file path, pinned sha256) of a registry name/alias or sevenn pretrained name that the
    registry lists as a SevenNet model; None when the registry does not list it."""
    import sevenn.util as sevenn_util

    registry = load_registry()
    for key, entry in registry.items():
        if entry.get("architecture") != "sevennet":
            continue
        names = {key, *entry.get("aliases", []), entry.get("sevenn_name", "")}
        try:
            path = sevenn_util.pretrained_name_to_path(entry["sevenn_name"])
        except (ValueError, KeyError):
            continue
        try:
            asked = sevenn_util.pretrained_name_to_path(name)
        except ValueError:
            asked = None
        if name in names or asked == path:
            return key, path, entry.get("sha256")
    return None


def load_sevenn_checkpoint(name_or_path: str | os.PathLike) -> Any:
    """A `sevenn.checkpoint.SevenNetCheckpoint` loaded without running code from the file.

    - a registry name or sevenn pretrained name listed in `calculators/registry.json` ("sevennet-0", "7net-0"):
      its file's sha256 must match the registry's pin before anything is unpickled;
    - any other file: loaded weights-only (tensors, numpy arrays, plain data); a file that needs code to load
      (crafted pickle) is refused;
    - anything else (a pretrained name the registry does not pin, a missing file): refused with the reason.
    `UnsafeCheckpointError` (a ValueError) or `FileNotFoundError` say why.
    """
    from sevenn.checkpoint import SevenNetCheckpoint, _config_cp_routine

    text = str(name_or_path)
    path = Path(text)
    if path.is_file():
        where, data = f"SevenNet checkpoint {path}", path.read_bytes()
    else:
        found = _registered_sevenn_file(text)
        if found is None:
            if path.suffix in (".pth", ".pt", ".ckpt") or os.sep in text:
                raise FileNotFoundError(f"SevenNet checkpoint {path} does not exist")
            raise UnsafeCheckpointError(
                f"{text!r} is not a SevenNet model listed in calculators/registry.json (sevennet-0) nor an existing "
                "checkpoint file; unregistered pretrained files are not loaded (nothing pins their sha256)"
            )
        key, file, expected = found
        data = Path(file).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if not expected:
            raise UnsafeCheckpointError(f"the registry pins no sha256 for {key}: refusing to load {file}")
        if digest != expected:
            raise UnsafeCheckpointError(
                f"{file} (registered as {key}) has sha256 {digest}, not the registered {expected}: the installed "
                "file was changed; reinstall sevenn==0.13.0. Not loaded."
            )
        where = f"{key} ({file})"
    raw = _weights_only_load(data, where)
    checkpoint = SevenNetCheckpoint(str(path) if path.is_file() else where)
    # fill the fields SevenNetCheckpoint._load would set, from the weights-only dict (sevenn==0.13.0 layout)
    checkpoint._config_original = raw.get("config", {})
    checkpoint._model_state_dict = raw.get("model_state_dict", {})
    checkpoint._optimizer_state_dict = raw.get("optimizer_state_dict", {})
    checkpoint._scheduler_state_dict = raw.get("scheduler_state_dict", {})
    checkpoint._epoch = raw.get("epoch")
    checkpoint._time = raw.get("time", "Not found")
    checkpoint._hash = raw.get("hash", "Not found")
    checkpoint._config = _config_cp_routine(checkpoint._config_original)
    checkpoint._loaded = True
    return checkpoint


class SevenNetModel(nn.Module):
    """`AtomisticModel` over a SevenNet `AtomGraphSequential` (default: the pretrained SevenNet-0, 11Jul2024).

    Args:
        name_or_path: a SevenNet model of `calculators/registry.json` ("sevennet-0", or its sevenn name "7net-0"),
            whose file is checked against the registered sha256, or a SevenNet checkpoint path, loaded
            weights-only. Nothing is ever unpickled with code execution (`load_sevenn_checkpoint`).
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
        except ImportError as err:  # pragma: no cover - sevenn is a main dependency
            raise ImportError("SevenNet teacher needs `sevenn==0.13.0` (pip install sevenn==0.13.0)") from err
        self._k = keys
        checkpoint = load_sevenn_checkpoint(name_or_path)
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
