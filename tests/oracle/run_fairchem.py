"""Run fairchem-core 1.10.0's GemNet-OC as a reference oracle, in a subprocess.

Usage (see ``fairchem_oracle.run_fairchem`` for the normal entry point)::

    PYTHONPATH=<site>:tests/oracle python tests/oracle/run_fairchem.py in.pt out.pt

``in.pt`` is a ``torch.save``'d plain dict:

* ``model_kwargs``: GemNetOC constructor kwargs (``otf_graph=True`` and
  ``scale_file=None`` are forced here);
* ``state_dict``: fairchem-layout state dict, loaded *strictly*; or ``None``
  together with ``init_seed`` (int) for a seeded random init, in which case every
  ``ScaleFactor`` gets a random value in [0.5, 2.0) so scaling matters;
* ``structures``: list of dicts ``positions (n,3)``, ``numbers (n,)``,
  ``cell (3,3)``, ``pbc (3,)``, ``tags (n,)``;
* ``dtype``: ``"float64"`` or ``"float32"``; ``batch``: bool;
* ``return_state_dict`` (bool, default: True iff ``state_dict`` is None),
  ``return_keys`` (bool), ``allow_unfitted_scales`` (bool, default False),
  ``return_graphs`` (bool): also return, per forward call (one per structure
  when ``batch=False``, one for all when ``batch=True``), the output of
  ``GemNetOC.get_graphs_and_indices`` (main/a2a/a2ee2a/qint graphs with
  edge_index, cell_offset, distance, vector, num_neighbors; id_swap; triplet and
  quadruplet indices) as a dict of tensors -- for debugging graph parity.

``out.pt`` is a dict with ``energy`` (list of 0-d float64 tensors), ``forces``
(list of (n,3) float64 tensors), ``num_params``, ``timings`` and optionally
``state_dict`` / ``keys`` (list of (name, shape) pairs).

dtype notes: fairchem hard-codes float32 in three places (``cell_offsets.float()``
/``cell.float()`` in get_pbc_distances, ``dtype=torch.float`` unit-cell grid in
radius_graph_pbc, ``x_E.float()``/``x_F.float()`` before the output layers).
With ``dtype="float64"`` we therefore (a) build a float64 model, (b) temporarily
make ``Tensor.float`` a no-op cast to float64 during the forward pass and
(c) let ``torch.bmm`` promote radius_graph_pbc's float32 unit-cell grid to
float64 and (d) set the default dtype to float64 (``torch.full(.., inf)`` in
get_max_neighbors_mask).  With ``dtype="float32"`` fairchem runs
completely unmodified.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path


def _setup_path() -> None:
    # tests/oracle itself holds the torch_scatter/torch_sparse stand-ins and
    # import stubs; it must come after the private site dir only for fairchem.
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.append(here)


@contextlib.contextmanager
def _float64_everywhere(enabled: bool):
    """Make fairchem's hard-coded float32 casts float64 (only when enabled)."""
    import torch

    if not enabled:
        yield
        return
    orig_float = torch.Tensor.float
    orig_bmm = torch.bmm

    def float_(self, memory_format=torch.preserve_format):  # noqa: ARG001
        return self.to(torch.float64) if self.is_floating_point() else orig_float(self)

    def bmm(a, b, *args, **kwargs):
        # radius_graph_pbc: bmm(cell^T (float64), unit_cell (float32 grid of ints))
        if a.dtype != b.dtype and a.is_floating_point() and b.is_floating_point():
            dt = torch.promote_types(a.dtype, b.dtype)
            a, b = a.to(dt), b.to(dt)
        return orig_bmm(a, b, *args, **kwargs)

    orig_default = torch.get_default_dtype()
    torch.Tensor.float = float_
    torch.bmm = bmm
    # torch.full(..., np.inf) etc. in get_max_neighbors_mask use the default dtype
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.Tensor.float = orig_float
        torch.bmm = orig_bmm
        torch.set_default_dtype(orig_default)


def _make_batch(structures, dtype):
    import torch
    from torch_geometric.data import Batch, Data

    datas = []
    for s in structures:
        pos = torch.as_tensor(s["positions"], dtype=torch.float64).to(dtype)
        n = pos.shape[0]
        cell = torch.as_tensor(s["cell"], dtype=torch.float64).to(dtype).view(1, 3, 3)
        pbc = torch.as_tensor(s["pbc"], dtype=torch.bool).view(1, 3)
        tags = torch.as_tensor(s.get("tags", [0] * n), dtype=torch.long)
        numbers = torch.as_tensor(s["numbers"], dtype=torch.long)
        datas.append(
            Data(
                pos=pos,
                cell=cell,
                pbc=pbc,
                atomic_numbers=numbers,
                natoms=torch.tensor([n], dtype=torch.long),
                tags=tags,
                fixed=torch.zeros(n, dtype=torch.long),
            )
        )
    return Batch.from_data_list(datas)


_GRAPH_NAMES = (
    "main_graph",
    "a2a_graph",
    "a2ee2a_graph",
    "qint_graph",
    "id_swap",
    "trip_idx_e2e",
    "trip_idx_a2e",
    "trip_idx_e2a",
    "quad_idx",
)


def _graphs_to_cpu(graph_tuple):
    """GemNetOC.get_graphs_and_indices output -> nested dict of detached tensors."""
    import torch

    def conv(x):
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if torch.is_tensor(x):
            return x.detach().clone()
        if hasattr(x, "coo"):  # SparseTensor stand-in (adj_edges)
            row, col, value = x.coo()
            return {"row": row.clone(), "col": col.clone(), "value": value.clone()}
        return x

    return {name: conv(v) for name, v in zip(_GRAPH_NAMES, graph_tuple, strict=True)}


def main(argv: list[str]) -> int:
    _setup_path()
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    in_path, out_path = argv[0], argv[1]
    inp = torch.load(in_path, weights_only=False)
    allow_unfitted = inp.get("allow_unfitted_scales", False)
    if inp.get("state_dict") is not None and not allow_unfitted:
        # fail fast, before the (slow) fairchem import; re-checked after loading
        zero = [k for k, v in inp["state_dict"].items() if k.endswith("scale_factor") and v == 0]
        if zero:
            raise RuntimeError(
                f"{len(zero)} ScaleFactor entries are unfitted (scale_factor == 0 means "
                f"fairchem silently skips the scaling): {zero[:5]} ..."
            )

    from fairchem.core.models.gemnet_oc.gemnet_oc import GemNetOC
    from fairchem.core.modules.scaling.scale_factor import ScaleFactor

    t_import = time.perf_counter() - t0
    dtype = {"float64": torch.float64, "float32": torch.float32}[inp.get("dtype", "float64")]
    kw = dict(inp["model_kwargs"])
    kw["otf_graph"] = True
    kw["scale_file"] = None
    init_seed = inp.get("init_seed")
    sd = inp.get("state_dict")

    torch.manual_seed(0 if init_seed is None else int(init_seed))
    model = GemNetOC(**kw).to(dtype)
    scale_mods = {n: m for n, m in model.named_modules() if isinstance(m, ScaleFactor)}

    if sd is None:
        if init_seed is None:
            raise ValueError("need either state_dict or init_seed")
        gen = torch.Generator().manual_seed(int(init_seed) + 12345)
        with torch.no_grad():
            for name in sorted(scale_mods):
                val = 0.5 + 1.5 * torch.rand((), generator=gen, dtype=torch.float64)
                scale_mods[name].scale_factor.fill_(val.item())
    else:
        sd = {k: (v.to(dtype) if torch.is_floating_point(v) else v) for k, v in sd.items()}
        # strict: raises on missing/unexpected keys and on shape mismatches
        model.load_state_dict(sd, strict=True)

    unfitted = [n for n, m in scale_mods.items() if not m.fitted]
    if unfitted and not allow_unfitted:
        raise RuntimeError(
            f"{len(unfitted)} ScaleFactor modules are unfitted (scale_factor == 0 means "
            f"fairchem silently skips the scaling): {unfitted[:5]} ..."
        )
    model.eval()

    structures = inp["structures"]
    groups = [structures] if inp.get("batch", True) else [[s] for s in structures]
    energies, forces, graphs = [], [], []
    conservative = model.regress_forces and not model.direct_forces
    t1 = time.perf_counter()
    for grp in groups:
        data = _make_batch(grp, dtype)
        grad_ctx = torch.enable_grad() if conservative else torch.no_grad()
        with grad_ctx, _float64_everywhere(dtype == torch.float64):
            out = model(data)
            if inp.get("return_graphs", False):
                graphs.append(_graphs_to_cpu(model.get_graphs_and_indices(data)))
        e = out["energy"].detach().to(torch.float64)
        energies.extend(e[i].clone() for i in range(len(grp)))
        if "forces" in out:
            f = out["forces"].detach().to(torch.float64)
            forces.extend(t.clone() for t in torch.split(f, data.natoms.tolist()))
    t_fwd = time.perf_counter() - t1

    result = {
        "energy": energies,
        "forces": forces,
        "num_params": sum(p.numel() for p in model.parameters()),
        "timings": {"import_s": t_import, "forward_s": t_fwd},
        "torch_version": torch.__version__,
    }
    if graphs:
        result["graphs"] = graphs
    full_sd = model.state_dict()
    if inp.get("return_state_dict", sd is None):
        result["state_dict"] = {k: v.detach().clone() for k, v in full_sd.items()}
    if inp.get("return_keys", False):
        result["keys"] = [(k, tuple(v.shape)) for k, v in full_sd.items()]
    torch.save(result, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
