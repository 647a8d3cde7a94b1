"""Function-preserving growth of a GemNet-OC student (Net2Net-style): more atom and/or edge channels (`widen`) or
more interaction blocks (`deepen`) with the same energies and forces at the start, so that a trained student can
be fine-tuned into a larger one instead of training the larger one from scratch.

Every weight keeps its trained values on the old channels. The new channels are computed from everything with
the fresh model's He-orthogonal initialisation (new output rows), and every layer reads them with zero weights
(new input columns of the old output rows), so the old channels, and with them the energy and the forces, are
unchanged; the zero weights receive gradients at once because the new channels are not zero. Layers whose input is
a concatenation (the edge embedding [h_s | h_t | rbf], the concat layer [h_s | h_t | m], the heads reading
[x_0 | x_1 | ...]) map each segment separately. Scale factors, bases and element references carry over.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import torch

from calculators.gemnet import GemNetOC, load_project_checkpoint, save_checkpoint
from calculators.hashing import sha256_file
from calculators.loading import load_model

_INTERACTIONS = ("quad_interaction", "atom_edge_interaction", "edge_atom_interaction", "atom_interaction")


def _input_segments(key: str, old: GemNetOC) -> list[str] | None:
    """Layout of a Linear layer's input as a list of channel kinds ("A" atom, "E" edge, "R" radial basis) where it
    is a concatenation; None for a single segment."""
    blocks = old.config.num_blocks + 1
    if key == "edge_emb.dense.linear.weight":
        return ["A", "A", "R"]
    if key.endswith("concat_layer.dense.linear.weight"):
        return ["A", "A", "E"]
    if key == "out_mlp_E.0.linear.weight":
        return ["A"] * blocks
    if key == "out_mlp_F.0.linear.weight":
        return ["E"] * blocks
    return None


def _old_columns(segments: list[str], old_sizes: dict[str, int], new_sizes: dict[str, int]) -> torch.Tensor:
    """Positions, in the new input, of the old input's columns."""
    cols, start = [], 0
    for kind in segments:
        cols.append(torch.arange(start, start + old_sizes[kind]))
        start += new_sizes[kind]
    return torch.cat(cols)


def widen(
    model: GemNetOC, *, emb_size_atom: int | None = None, emb_size_edge: int | None = None, seed: int = 0
) -> GemNetOC:
    """A wider copy of `model` (same dtype, eval mode) with `emb_size_atom` / `emb_size_edge` channels and the same
    outputs (energies eV, per-atom energies, forces eV/Å) up to float rounding. `seed` sets the new channels'
    initialisation. Presets with quadruplet or atom-graph interactions are not supported (ValueError)."""
    c = model.config
    on = [name for name in _INTERACTIONS if getattr(c, name)]
    if on:
        raise ValueError(f"widening supports students without {', '.join(on)} (the fast presets); got them on")
    new_atom = c.emb_size_atom if emb_size_atom is None else int(emb_size_atom)
    new_edge = c.emb_size_edge if emb_size_edge is None else int(emb_size_edge)
    if new_atom < c.emb_size_atom or new_edge < c.emb_size_edge:
        raise ValueError(
            f"widening cannot shrink: atom {c.emb_size_atom} -> {new_atom}, edge {c.emb_size_edge} -> {new_edge}"
        )
    if (new_atom == new_edge) != (c.emb_size_atom == c.emb_size_edge):
        # the edge->atom Dense (with its SiLU) of the atom update and output blocks exists only when the widths
        # differ: adding or removing it cannot keep the outputs
        raise ValueError(
            f"widening cannot make the atom and edge widths {'equal' if new_atom == new_edge else 'differ'} "
            f"(atom {c.emb_size_atom} -> {new_atom}, edge {c.emb_size_edge} -> {new_edge}): the edge-to-atom "
            "projection layers exist only when they differ"
        )
    cfg = copy.deepcopy(c)
    cfg.emb_size_atom, cfg.emb_size_edge = new_atom, new_edge
    first = next(model.parameters())
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        new = GemNetOC(cfg).to(dtype=first.dtype)
    new = new.to(device=first.device)
    old_sizes = {"A": c.emb_size_atom, "E": c.emb_size_edge, "R": c.num_radial}
    new_sizes = {"A": new_atom, "E": new_edge, "R": c.num_radial}
    fresh = new.state_dict()
    state = {}
    for key, w_old in model.state_dict().items():
        w = fresh[key].clone()
        if w.shape == w_old.shape:
            state[key] = w_old.clone()
        elif key == "atom_emb.embeddings.weight":  # (elements, A): new columns are new outputs
            w[:, : w_old.shape[1]] = w_old
            state[key] = w
        elif w.dim() == 2 and w_old.dim() == 2:  # Linear (out, in)
            segments = _input_segments(key, model)
            if segments is None:
                cols = torch.arange(w_old.shape[1])
            else:
                cols = _old_columns(segments, old_sizes, new_sizes)
            if cols.numel() != w_old.shape[1] or int(cols.max()) >= w.shape[1]:
                raise ValueError(f"cannot map {key}: {tuple(w_old.shape)} -> {tuple(w.shape)}")
            rows = w_old.shape[0]
            w[:rows] = 0.0  # old outputs read the new channels with zero weights
            w[:rows, cols] = w_old
            state[key] = w
        else:
            raise ValueError(f"cannot widen {key}: {tuple(w_old.shape)} -> {tuple(w.shape)}")
    new.load_state_dict(state, strict=True)
    return new.eval()


def deepen(model: GemNetOC, *, num_blocks: int) -> GemNetOC:
    """A deeper copy of `model` (same dtype, eval mode) with `num_blocks` interaction blocks and the same outputs
    (energies eV, per-atom energies, forces eV/Å) up to float rounding. Each new interaction block and its output
    block start as copies of the last trained ones; the heads' first layers read the new blocks' outputs with zero
    weights, so the outputs do not change, and those weights receive gradients at once (the new blocks' outputs are
    not zero). Any preset: the new blocks have the last block's interactions."""
    c = model.config
    if int(num_blocks) < c.num_blocks:
        raise ValueError(f"deepening cannot remove blocks: {c.num_blocks} -> {num_blocks}")
    if c.num_blocks < 1:
        raise ValueError("deepening needs a student with at least one interaction block to copy")
    cfg = copy.deepcopy(c)
    cfg.num_blocks = int(num_blocks)
    first = next(model.parameters())
    new = GemNetOC(cfg).to(dtype=first.dtype, device=first.device)
    fresh = new.state_dict()
    old_state = model.state_dict()
    state = {}
    last_int, last_out = c.num_blocks - 1, c.num_blocks

    def source_key(key: str) -> str:
        m = re.match(r"(int_blocks|out_blocks)\.(\d+)\.(.*)", key)
        if m is None:
            return key
        kind, i, rest = m.group(1), int(m.group(2)), m.group(3)
        last = last_int if kind == "int_blocks" else last_out
        return f"{kind}.{min(i, last)}.{rest}"

    for key, w in fresh.items():
        src = source_key(key)
        w_old = old_state[src]
        if w.shape == w_old.shape:
            state[key] = w_old.clone()
        elif key in ("out_mlp_E.0.linear.weight", "out_mlp_F.0.linear.weight"):
            w = torch.zeros_like(w)  # (out, width * (blocks + 1)): the new blocks' segments read with zero weights
            w[:, : w_old.shape[1]] = w_old
            state[key] = w
        else:
            raise ValueError(f"cannot deepen {key}: {tuple(w_old.shape)} -> {tuple(w.shape)}")
    new.load_state_dict(state, strict=True)
    return new.eval()


def widen_checkpoint(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    emb_size_atom: int | None = None,
    emb_size_edge: int | None = None,
    num_blocks: int | None = None,
    seed: int = 0,
) -> tuple[GemNetOC, GemNetOC]:
    """`widen` (and/or `deepen` to `num_blocks` interaction blocks) a project checkpoint (or registry name) and
    save it to `out`; the metadata keeps the source's teacher fingerprint and says where it came from (source, its
    widths and blocks, parameters, sha256, recipe); returns (old, new)."""
    model = load_model(str(source), device="cpu")
    if not isinstance(model, GemNetOC):
        raise ValueError(f"{source} is not a GemNet-OC model")
    wide = model
    if emb_size_atom is not None or emb_size_edge is not None:
        wide = widen(model, emb_size_atom=emb_size_atom, emb_size_edge=emb_size_edge, seed=seed)
    if num_blocks is not None:
        wide = deepen(wide, num_blocks=num_blocks)
    source_meta: dict = {}
    if Path(source).is_file():
        source_meta = load_project_checkpoint(source)[1]
    meta = {
        "widened_from": {
            "source": str(source),
            "sha256": sha256_file(source) if Path(source).is_file() else None,
            "emb_size_atom": model.config.emb_size_atom,
            "emb_size_edge": model.config.emb_size_edge,
            "num_blocks": model.config.num_blocks,
            "parameters": model.num_parameters(),
            "seed": seed,
            "recipe": source_meta.get("recipe"),
        }
    }
    if "teacher" in source_meta:
        meta["teacher"] = source_meta["teacher"]
    save_checkpoint(wide, out, meta)
    return model, wide
