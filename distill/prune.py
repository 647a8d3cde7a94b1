"""Student initialisation by block reduction of a GemNet-OC teacher (efficient-JMP style) and a GradCAM-style
per-block importance report.

GemNet-OC's energy head reads the concatenation [x_E,0 | x_E,1 | ... | x_E,B] of the output blocks' atom
features (block 0 = the initial embedding, block i = after interaction block i); the force head reads the
same for edges. Keeping interaction blocks K ⊂ {0..B-1} keeps output blocks {0} ∪ {k+1 : k ∈ K} and slices the
input columns of the first out_mlp_E / out_mlp_F layer to those blocks' slots. Keeping all blocks is the
identity; keeping the first b' blocks is exact for the kept part of the network.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence

import torch
from ase import Atoms

from calculators.batch import AtomsBatch
from calculators.gemnet import GemNetOC, save_checkpoint
from calculators.keys import ENERGY
from calculators.loading import load_model
from calculators.tags import tags_for


def prune_blocks(model: GemNetOC, keep: int | Sequence[int]) -> GemNetOC:
    """A new GemNet-OC with only interaction blocks `keep` (an int b' = the first b' blocks), weights copied."""
    nb = model.config.num_blocks
    blocks = list(range(keep)) if isinstance(keep, int) else sorted(set(int(k) for k in keep))
    if not blocks or blocks[0] < 0 or blocks[-1] >= nb:
        raise ValueError(f"blocks to keep must be a non-empty subset of 0..{nb - 1}, got {keep!r}")
    out_keep = [0] + [k + 1 for k in blocks]
    cfg = copy.deepcopy(model.config)
    cfg.num_blocks = len(blocks)
    new = GemNetOC(cfg).to(dtype=next(model.parameters()).dtype)
    old_state = model.state_dict()
    state = {}
    for key, value in old_state.items():
        m = re.match(r"(int_blocks|out_blocks)\.(\d+)\.(.*)", key)
        if m:
            kind, i, rest = m.group(1), int(m.group(2)), m.group(3)
            kept = blocks if kind == "int_blocks" else out_keep
            if i in kept:
                state[f"{kind}.{kept.index(i)}.{rest}"] = value.clone()
            continue
        state[key] = value.clone()
    for head, width in (("out_mlp_E", cfg.emb_size_atom), ("out_mlp_F", cfg.emb_size_edge)):
        key = f"{head}.0.linear.weight"
        if key in state:
            w = state[key]
            cols = torch.cat([torch.arange(j * width, (j + 1) * width) for j in out_keep])
            state[key] = w[:, cols].clone()
    new.load_state_dict(state, strict=True)
    return new


def block_importance(model: GemNetOC, batch: AtomsBatch) -> list[float]:
    """GradCAM-style importance of each output block's x_E for the energy: mean over atoms of |Σ_f x·∂E/∂x|.

    Returns B+1 values (index 0 = initial embedding, i = after interaction block i), normalised to sum to 1.
    """
    feats: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        x_e = output[0]
        x_e.retain_grad()
        feats.append(x_e)

    handles = [blk.register_forward_hook(hook) for blk in model.out_blocks]
    try:
        with torch.enable_grad():
            out = model(batch, forces=False, create_graph=False)
            out[ENERGY].sum().backward()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    scores = [float((x.detach() * x.grad).sum(-1).abs().mean()) for x in feats]
    total = sum(scores) or 1.0
    return [s / total for s in scores]


def importance_report(scores: Sequence[float]) -> str:
    """Plain-text table of per-block importances."""
    lines = ["block  importance"]
    for i, s in enumerate(scores):
        name = "embedding" if i == 0 else f"int {i - 1}"
        lines.append(f"{name:9s}  {s:8.4f}  {'#' * int(round(40 * s))}")
    return "\n".join(lines)


def prune_checkpoint(
    source: str | os.PathLike,
    out: str | os.PathLike,
    keep: int | Sequence[int],
    *,
    structures: Sequence[Atoms] = (),
) -> tuple[GemNetOC, GemNetOC, str | None]:
    """Load a GemNet-OC (checkpoint path or registry name), keep blocks `keep` (`prune_blocks`) and save the
    result as a project checkpoint at `out`. With `structures` (at most 16 are used) the block importance report
    of the original is computed too. Returns (original, pruned, report or None)."""
    model = load_model(source)
    if not isinstance(model, GemNetOC):
        raise ValueError(f"{source} is a {type(model).__name__}, not a GemNet-OC: only GemNet-OC blocks can be pruned")
    report = None
    if structures:
        sub = list(structures)[:16]
        batch = AtomsBatch.from_atoms(sub, dtype=next(model.parameters()).dtype, tags=[tags_for(a) for a in sub])
        report = importance_report(block_importance(model, batch))
    small = prune_blocks(model, keep)
    save_checkpoint(small, out, {"parent": str(source), "kept_blocks": str(keep)})
    return model, small, report
