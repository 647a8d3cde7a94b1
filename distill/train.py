"""Training a student: one readable `train_step`, and `train` around it (AdamW, warm-up + cosine, clipping, EMA,
validation split, early stopping, resumable checkpoints, CSV log, progress bar, CPU or CUDA).

Two stages: soft targets from the teacher (`max_steps` steps with `losses`), then optionally `finetune_steps` on
DFT hard targets (records carrying "dft_energy"/"dft_forces"; task loss only) at `finetune_lr`.

Files in `out_dir`: `state.pt` (everything to resume, written atomically every `checkpoint_every` steps),
`best.pt` / `student.pt` (project checkpoints of the EMA weights; the recipe = this config in the metadata),
`log.csv` (one row per logged step: losses, learning rate, validation metrics).
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from calculators.ase_calculator import resolve_device
from calculators.files import atomic_torch_save, torch_load_problem
from calculators.gemnet import PRESETS, GemNetOC, preset, save_checkpoint
from calculators.gemnet.checkpoint import read_checkpoint
from calculators.hashing import sha256_file
from calculators.keys import CELL, DFT_ENERGY, DFT_FORCES, NODE_FEATURES, NUMBERS, PAIR_ENERGY
from calculators.loading import load_model
from calculators.parsing import checked_choice, checked_number, dataclass_from_dict
from distill.evaluate import evaluate_records
from distill.labels import collate, describe_teacher, same_teacher
from distill.losses import DistillationLoss, LossConfig
from distill.pairs import collate_with_partners
from distill.references import references_from_records
from distill.scale_fit import fit_scale_factors

STATE = "state.pt"


@dataclass
class TrainConfig:
    """Recipe of a training run (saved into the output checkpoint's metadata).

    student: GemNet-OC preset name, or a project checkpoint path to start from (e.g. a pruned teacher);
    student_overrides: preset overrides; lr in the units of AdamW; steps count optimizer updates.
    """

    student: str = "gemnet-oc-student"
    student_overrides: dict[str, Any] = field(default_factory=dict)
    losses: LossConfig = field(default_factory=LossConfig)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    max_steps: int = 1000
    min_lr_ratio: float = 0.02
    batch_size: int = 8
    clip_grad: float = 10.0
    ema_decay: float = 0.99
    val_fraction: float = 0.1
    # "path-hash": records sharing composition and cell (the snapshots of one relaxation or MD path, one gas
    # molecule's distortions) fall on the same side of the validation split, chosen by a hash of the path and the
    # seed, so a path stays on its side when caches are added (fine-tuning rounds on a growing set validate on
    # paths no earlier round trained on); "path": the same groups drawn in a seeded order over the whole set (a new
    # cache reshuffles them: rounds 9-11 of the default student); "record": a plain per-record split
    val_split: str = "path-hash"
    eval_every: int = 50
    patience: int = 10
    checkpoint_every: int = 50
    finetune_steps: int = 0
    finetune_lr: float = 2e-4
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None
    tensorboard: bool = False
    progress: bool = True
    # fresh students only: fit per-element reference energies on the training labels (distill.references) and the
    # ScaleFactor layers on `scale_fit_batches` training batches (distill.scale_fit) before the first step
    fit_references: bool = True
    scale_fit_batches: int = 8
    # training records whose largest teacher force exceeds this (eV/Å) are left out (counted in the checkpoint's
    # metadata): a few % of far-from-equilibrium structures otherwise dominate the loss and its clipped gradients
    max_force: float | None = None

    def __post_init__(self) -> None:
        """Check every setting (a recipe file's typo fails here, in one line, not as a NaN run or a traceback
        mid-training); numeric strings (YAML's `1e-3`) become numbers."""
        what = "training settings"
        if not isinstance(self.student, str) or not self.student:
            raise ValueError(f"{what}: student must be a preset name or a checkpoint path, got {self.student!r}")
        if not isinstance(self.student_overrides, dict):
            raise ValueError(f"{what}: student_overrides must be a mapping, got {self.student_overrides!r}")
        if isinstance(self.losses, dict):
            self.losses = LossConfig.from_dict(self.losses)
        elif not isinstance(self.losses, LossConfig):
            raise ValueError(f"{what}: losses must be a mapping of loss settings, got {self.losses!r}")
        num = functools.partial(checked_number, what=what)
        self.lr = num(self.lr, "lr", low=0, low_open=True)
        self.finetune_lr = num(self.finetune_lr, "finetune_lr", low=0, low_open=True)
        self.weight_decay = num(self.weight_decay, "weight_decay", low=0)
        self.min_lr_ratio = num(self.min_lr_ratio, "min_lr_ratio", low=0, high=1)
        self.clip_grad = num(self.clip_grad, "clip_grad", low=0, low_open=True)
        self.ema_decay = num(self.ema_decay, "ema_decay", low=0, high=1, high_open=True)
        self.val_fraction = num(self.val_fraction, "val_fraction", low=0, high=1, high_open=True)
        self.max_force = num(self.max_force, "max_force", low=0, low_open=True, optional=True)
        for name, low in (
            ("max_steps", 1), ("warmup_steps", 0), ("batch_size", 1), ("eval_every", 1), ("patience", 1),
            ("checkpoint_every", 1), ("finetune_steps", 0), ("seed", 0), ("scale_fit_batches", 0),
        ):  # fmt: skip
            setattr(self, name, num(getattr(self, name), name, integer=True, low=low))
        self.threads = num(self.threads, "threads", integer=True, low=0, optional=True)
        checked_choice(self.val_split, "val_split", ("path-hash", "path", "record"), what=what)
        checked_choice(self.dtype, "dtype", ("float32", "float64"), what=what)
        try:
            torch.device("cpu" if self.device == "auto" else self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"{what}: device {self.device!r} is not a torch device (auto, cpu, cuda, cuda:1, mps)"
            ) from err

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["losses"] = self.losses.to_dict()
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = dict(values)
        if isinstance(values.get("losses"), dict):
            values["losses"] = LossConfig.from_dict(values["losses"])
        return dataclass_from_dict(cls, values, what="training settings")


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to `min_lr_ratio * lr` at `max_steps`; stage 2 cosine from
    `finetune_lr`."""
    c = config
    if step >= c.max_steps:
        t = (step - c.max_steps) / max(1, c.finetune_steps)
        return c.finetune_lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    t = (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps)
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def train_step(
    model: torch.nn.Module,
    loss_fn: DistillationLoss,
    optimizer: torch.optim.Optimizer,
    records: Sequence[dict[str, torch.Tensor]],
    *,
    lr: float,
    clip_grad: float,
    generator: torch.Generator | None = None,
    reduce_grads: Callable[[list[torch.Tensor]], None] | None = None,
) -> dict[str, float]:
    """One optimizer update on a list of cached records; returns the loss terms and the gradient norm.

    `reduce_grads(grads)` averages gradients across data-parallel processes before clipping (DDP)."""
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    if loss_fn.config.pair > 0:
        batch, labels = collate_with_partners(records, dtype=dtype, device=device)
    else:
        batch, labels = collate(records, dtype=dtype, device=device)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total, terms = loss_fn(model, batch, labels, generator)
    total.backward()
    # 1.0 where this process's loss is not finite; averaged with the gradients, so every process decides alike
    bad = torch.tensor(
        [0.0 if all(math.isfinite(float(v)) for v in terms.values()) else 1.0], dtype=total.dtype, device=total.device
    )
    if reduce_grads is not None:
        for p in (p for g in optimizer.param_groups for p in g["params"] if p.requires_grad and p.grad is None):
            p.grad = torch.zeros_like(p)  # every process must reduce the same list of tensors
        reduce_grads([*(p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None), bad])
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    terms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, clip_grad))
    if float(bad) > 0 or not math.isfinite(terms["grad_norm"]):
        optimizer.zero_grad(set_to_none=True)  # the weights stay as they were: no update from a non-finite step
        shown = ", ".join(f"{k} {float(v):.4g}" for k, v in terms.items())
        raise NonFiniteTrainingError(f"non-finite loss or gradient ({shown})")
    optimizer.step()
    return terms


class NonFiniteTrainingError(FloatingPointError):
    """A training step whose loss or gradient norm is NaN or infinite (diverged learning rate, a label of
    absurd size): the step is not applied."""


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model (parameters; buffers copied)."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)


def is_fresh(config: TrainConfig) -> bool:
    """True when `student` names a preset (a new model), False for a checkpoint path or registered model."""
    return config.student in PRESETS


def starting_point(config: TrainConfig) -> dict[str, Any] | None:
    """Lineage of a run that starts from a checkpoint file: its path, sha256, step and, when it was grown by
    `distill widen`, its `widened_from` record (so a fine-tuned widened student still says what it was widened
    from); None for a fresh preset or a registry name."""
    if is_fresh(config) or not Path(config.student).is_file():
        return None
    meta = read_checkpoint(config.student).get("metadata") or {}  # metadata only: build_student loads the model
    out = {"path": str(config.student), "sha256": sha256_file(config.student), "step": meta.get("step")}
    if "widened_from" in meta:
        out["widened_from"] = meta["widened_from"]
    return out


def build_student(config: TrainConfig, element_references: list[float] | None = None) -> GemNetOC:
    """A fresh student from a preset (`student` names one; with `element_references` E_ref(Z), eV, if given), or a
    GemNet-OC to start from: a checkpoint path or registry name, loaded with `calculators.load_model` (e.g. a
    pruned teacher or an earlier round's student; its own references are kept)."""
    if is_fresh(config):
        torch.manual_seed(config.seed)
        overrides = dict(config.student_overrides)
        if element_references is not None:
            overrides["element_references"] = element_references
        return GemNetOC(preset(config.student, **overrides))
    try:
        model = load_model(config.student)
    except KeyError:
        raise KeyError(
            f"student {config.student!r} is neither a GemNet-OC preset ({sorted(PRESETS)}) nor a checkpoint or "
            "registered model"
        ) from None
    if not isinstance(model, GemNetOC):
        raise ValueError(f"student {config.student!r} is a {type(model).__name__}, not a GemNet-OC")
    return model


def _records_references(config: TrainConfig, records: Sequence[dict]) -> list[float] | None:
    """E_ref(Z) fitted on the training records for a fresh student with `fit_references`, else None."""
    if not config.fit_references or not is_fresh(config):
        return None

    num_elements = preset(config.student, **config.student_overrides).num_elements
    return references_from_records(records, num_elements)


def _fit_scales(model: torch.nn.Module, config: TrainConfig, records: Sequence[dict]) -> dict[str, float]:
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    batches = []
    for k in range(config.scale_fit_batches):
        idx = _batch_indices(k, len(records), config.batch_size, config.seed + 7)
        batches.append(collate([records[i] for i in idx], dtype=dtype, device=device)[0])
    return fit_scale_factors(model, batches)


class _Distributed:
    """Data parallelism over processes started by `torchrun` (gloo on CPU, nccl on CUDA): every process takes a
    strided share of each global batch and gradients are averaged before the update, so the result matches one
    process running the whole batch. Rank 0 alone evaluates, logs and writes checkpoints."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.started_here = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.started_here = True
        self.rank = dist.get_rank() if self.world > 1 else 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, indices: list[int]) -> list[int]:
        return indices[self.rank :: self.world] if self.world > 1 else indices

    def reduce_grads(self, grads: list[torch.Tensor]) -> None:
        if self.world == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_module(self, module: torch.nn.Module) -> None:
        if self.world == 1:
            return
        for t in list(module.parameters()) + list(module.buffers()):
            self.dist.broadcast(t.data, 0)

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank."""
        if self.world == 1:
            return flag
        t = torch.tensor([1 if flag else 0])
        self.dist.broadcast(t, 0)
        return bool(t.item())

    def close(self) -> None:
        if self.started_here:
            self.dist.destroy_process_group()


# labels past these no teacher can be trusted with (atoms on top of each other gave SevenNet-0 −9e12 eV and
# 1e14 eV/Å): always left out, whatever max_force says, so that one such record cannot set the element references
ABSURD_FORCE = 1e3  # eV/Å
ABSURD_ENERGY_PER_ATOM = 1e3  # eV, |E| / atoms


def filter_records(records: Sequence[dict], max_force: float | None) -> tuple[list[dict], int]:
    """Records whose largest teacher force norm is at most `max_force` eV/Å (all when None), and how many were left
    out. A record with a non-finite energy or force, a force above `ABSURD_FORCE` or an energy per atom above
    `ABSURD_ENERGY_PER_ATOM` in size is always left out."""
    kept = []
    for r in records:
        if not (bool(torch.isfinite(r["energy"]).all()) and bool(torch.isfinite(r["forces"]).all())):
            continue
        fmax = float(r["forces"].norm(dim=-1).max()) if r["forces"].numel() else 0.0
        if fmax > (ABSURD_FORCE if max_force is None else min(max_force, ABSURD_FORCE)):
            continue
        if float(r["energy"].abs().max()) > ABSURD_ENERGY_PER_ATOM * max(1, r["forces"].shape[0]):
            continue
        kept.append(r)
    return kept, len(records) - len(kept)


def path_key(record: dict) -> tuple:
    """Records with the same key come from one path: same atomic numbers (in order) and the same cell to 1e-6 Å
    (relaxations and MD keep the cell; distinct starts differ by their continuous strain)."""
    cell = torch.round(record[CELL].double() * 1e6).to(torch.int64).flatten().tolist()
    return tuple(record[NUMBERS].tolist()), tuple(cell)


def split_records(
    records: Sequence[dict], val_fraction: float, seed: int, *, by: str = "record"
) -> tuple[list[dict], list[dict]]:
    """Reproducible train/validation split (at least one validation record when val_fraction > 0).

    by="record" draws records; by="path" draws whole groups of `path_key` (snapshots of one trajectory never
    straddle the split) until `val_fraction` of the records are held out; by="path-hash" holds out each group
    whose hash (with the seed) falls below `val_fraction`, so a group's side does not depend on the other records.
    Both path splits fall back to the record split when the groups cannot leave both sides non-empty."""
    if by not in ("record", "path", "path-hash"):
        raise ValueError(f"unknown validation split {by!r}: use 'record', 'path' or 'path-hash'")
    n = len(records)
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 and n > 1 else 0
    chosen = None
    if by == "path" and n_val:
        chosen = _path_split(records, n_val, seed)
    elif by == "path-hash" and n_val:
        chosen = _path_hash_split(records, val_fraction, seed)
    if chosen is not None:
        return [r for i, r in enumerate(records) if i not in chosen], [records[i] for i in sorted(chosen)]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1)).tolist()
    return [records[i] for i in perm[n_val:]], [records[i] for i in perm[:n_val]]


def _path_groups(records: Sequence[dict]) -> dict[tuple, list[int]]:
    """Record indices per `path_key`, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(path_key(r), []).append(i)
    return groups


def _path_split(records: Sequence[dict], n_val: int, seed: int) -> set[int] | None:
    """Indices of whole `path_key` groups, drawn in a seeded order until at least `n_val` records; None when
    they would take every record."""
    members = list(_path_groups(records).values())
    chosen: set[int] = set()
    for g in torch.randperm(len(members), generator=torch.Generator().manual_seed(seed + 1)).tolist():
        if len(chosen) >= n_val:
            break
        chosen.update(members[g])
    return chosen if len(chosen) < len(records) else None


def _path_hash(key: tuple, seed: int) -> float:
    """A uniform number in [0, 1) from a `path_key` and a seed (sha256: the same on every machine and run)."""
    digest = hashlib.sha256(repr((seed, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _path_hash_split(records: Sequence[dict], val_fraction: float, seed: int) -> set[int] | None:
    """Indices of the `path_key` groups whose `_path_hash` is below `val_fraction` (at least the lowest one);
    None when that would take every record."""
    scored = sorted((_path_hash(key, seed), members) for key, members in _path_groups(records).items())
    chosen = {i for h, members in scored if h < val_fraction for i in members} or set(scored[0][1])
    return chosen if len(chosen) < len(records) else None


def _batch_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Records of step `step`: epoch-wise permutations from (seed, epoch), so a resumed run sees the same batches."""
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()
    return perm[pos * batch_size : (pos + 1) * batch_size]


def train(
    config: TrainConfig,
    train_records: Sequence[dict[str, torch.Tensor]],
    out_dir: str | os.PathLike,
    *,
    val_records: Sequence[dict[str, torch.Tensor]] | None = None,
    metadata: dict[str, Any] | None = None,
    resume: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train a student on cached label records; resumes from `out_dir/state.pt` when present (and `resume`).

    Without `val_records` a `val_fraction` split of `train_records` is held out. Returns a summary with the
    final validation metrics and the checkpoint paths. `on_step(step)` runs after each update in every
    process (tests, hooks; in process 0 after that step's checkpoint is written).
    """
    c = config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if c.threads:
        torch.set_num_threads(c.threads)
    dtype = getattr(torch, c.dtype)
    device = resolve_device("auto") if c.device == "auto" else torch.device(c.device)
    if val_records is None:
        train_records, val_records = split_records(train_records, c.val_fraction, c.seed, by=c.val_split)
    train_records, n_dropped = filter_records(train_records, c.max_force)
    if val_records:  # validate within the training distribution (and never on non-finite labels)
        val_records, _ = filter_records(val_records, c.max_force)
    if not train_records:
        raise ValueError("no training records")
    teacher_width = int(train_records[0][NODE_FEATURES].shape[1]) if NODE_FEATURES in train_records[0] else None
    dist = _Distributed(device)
    state_path = out / STATE
    saved = _read_state(state_path) if resume and state_path.is_file() else None
    resuming = saved is not None
    # the references are part of the model config: a resumed run takes them from its saved state
    refs = saved.get("element_references") if resuming else _records_references(c, train_records)
    model = build_student(c, refs).to(device=device, dtype=dtype).train()
    fitted_scales: dict[str, float] = {}
    if not resuming and is_fresh(c) and c.scale_fit_batches > 0:
        fitted_scales = _fit_scales(model, c, train_records)
    dist.broadcast_module(model)
    loss_soft = DistillationLoss(c.losses, model.config.emb_size_atom, teacher_width).to(device=device, dtype=dtype)
    dist.broadcast_module(loss_soft)
    hard_cfg = LossConfig(
        energy=c.losses.energy, forces=c.losses.forces, energy_kind=c.losses.energy_kind,
        force_kind=c.losses.force_kind, targets="dft",
    )  # fmt: skip
    loss_hard = DistillationLoss(hard_cfg, model.config.emb_size_atom, teacher_width)
    params = list(model.parameters()) + list(loss_soft.parameters())
    optimizer = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    state: dict[str, Any] = {"step": 0, "best_score": float("inf"), "bad_evals": 0, "best_step": -1, "stopped": False}
    if resuming:
        before = _normalised(saved["config"])
        if before != c.to_dict():
            now = c.to_dict()
            diff = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
            changes = ", ".join(f"{k}: {before.get(k)!r} saved, {now.get(k)!r} now" for k in diff)
            raise ValueError(
                f"{state_path} was written by another recipe ({changes}); set those in the recipe to resume, or use "
                "another out_dir or resume=False"
            )
        _check_same_teacher(out, saved, (metadata or {}).get("teacher"))
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        loss_soft.load_state_dict(saved["heads"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["progress"]
        fitted_scales = saved.get("fitted_scales", {})
    metadata = {
        **(metadata or {}), "fitted_scale_factors": fitted_scales, "data_parallel_processes": dist.world,
        "training_records": len(train_records), "dropped_over_max_force": n_dropped,
        "paired_records": sum(PAIR_ENERGY in r for r in train_records),
    }  # fmt: skip
    start = saved.get("started_from") if resuming else starting_point(c)
    if start is not None:
        metadata["started_from"] = start
    has_dft = all(DFT_ENERGY in r and DFT_FORCES in r for r in train_records)
    total_steps = c.max_steps + (c.finetune_steps if has_dft else 0)
    log_path = out / "log.csv"
    writer_tb = _tensorboard(out) if c.tensorboard and dist.main else None
    bar = None
    if c.progress and dist.main:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step")
    last_val: dict[str, float] = state.get("last_val", {})
    t0 = time.time()
    while state["step"] < total_steps and not state["stopped"]:
        step = state["step"]
        stage = "soft" if step < c.max_steps else "hard"
        if stage == "hard" and step == c.max_steps:
            model.load_state_dict(ema.state_dict())  # fine-tune from the EMA weights of stage 1
        idx = _batch_indices(step, len(train_records), c.batch_size, c.seed)
        gen = torch.Generator().manual_seed(c.seed * 7919 + step + 104729 * dist.rank)
        try:
            terms = train_step(
                model, loss_soft if stage == "soft" else loss_hard, optimizer,
                [train_records[i] for i in dist.share(idx)],
                lr=learning_rate(step, c), clip_grad=c.clip_grad, generator=gen, reduce_grads=dist.reduce_grads,
            )  # fmt: skip
        except NonFiniteTrainingError as err:
            if bar is not None:
                bar.close()
            saved_step = state_step(state_path)
            kept = f"{state_path} keeps step {saved_step}" if saved_step is not None else "no state was saved yet"
            raise NonFiniteTrainingError(
                f"training diverged at step {step + 1}: {err}; no checkpoint was written from it ({kept}). Lower "
                "lr or clip_grad, or leave out extreme labels (max_force)"
            ) from None
        update_ema(ema, model, c.ema_decay if step >= c.warmup_steps else 0.0)
        state["step"] = step = step + 1
        row: dict[str, Any] = {"step": step, "stage": stage, "lr": learning_rate(step - 1, c), **terms}
        if dist.main and val_records and (step % c.eval_every == 0 or step == total_steps):
            last_val = evaluate_records(ema, val_records, targets="teacher" if stage == "soft" else "dft")
            row.update({f"val_{k}": v for k, v in last_val.items()})
            score = last_val["energy_mae_per_atom"] + last_val["force_mae"]
            if score < state["best_score"]:
                state.update(best_score=score, bad_evals=0, best_step=step)
                save_checkpoint(ema, out / "best.pt", _meta(c, metadata, last_val, step))
            else:
                state["bad_evals"] += 1
                if stage == "soft" and state["bad_evals"] >= c.patience:
                    state["stopped"] = True
            state["last_val"] = last_val
        if val_records and (step % c.eval_every == 0 or step == total_steps):
            state["stopped"] = dist.agree(state["stopped"])
        if not dist.main:  # rank 0 alone logs and writes checkpoints
            if on_step is not None:
                on_step(step)
            continue
        _log(log_path, row)
        if writer_tb is not None:
            for k, v in row.items():
                if isinstance(v, float):
                    writer_tb.add_scalar(k, v, step)
        if step % c.checkpoint_every == 0 or step == total_steps or state["stopped"]:
            atomic_torch_save(
                {
                    "config": c.to_dict(), "model": model.state_dict(), "ema": ema.state_dict(),
                    "heads": loss_soft.state_dict(), "optimizer": optimizer.state_dict(), "progress": state,
                    "element_references": model.config.element_references, "fitted_scales": fitted_scales,
                    "teacher": (metadata or {}).get("teacher"), "started_from": metadata.get("started_from"),
                },
                state_path,
            )  # fmt: skip
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{terms['total']:.3g}", **({"val_f": f"{last_val['force_mae']:.3f}"} if last_val else {})
            )
        if on_step is not None:
            on_step(step)
    if bar is not None:
        bar.close()
    if not dist.main:
        dist.close()
        return {"steps": state["step"], "rank": dist.rank}
    final_val = evaluate_records(ema, val_records) if val_records else {}
    student_path = save_checkpoint(ema, out / "student.pt", _meta(c, metadata, final_val, state["step"]))
    dist.close()
    return {
        "steps": state["step"],
        "stopped_early": state["stopped"],
        "best_step": state["best_step"],
        "validation": final_val,
        "student": str(student_path),
        "seconds": time.time() - t0,
    }


def _normalised(config: dict[str, Any]) -> dict[str, Any]:
    """A saved recipe with the settings added since it was written at their defaults (a state from before a
    new loss term existed resumes under the same recipe); as saved when it no longer parses."""
    try:
        return TrainConfig.from_dict(config).to_dict()
    except (TypeError, ValueError):
        return config


def _read_state(path: Path) -> dict[str, Any]:
    """A saved training state, or a `ValueError` saying what to do when it cannot be read (the file is left
    where it is)."""
    try:
        saved = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several kinds for a damaged file
        raise ValueError(
            f"cannot resume: {torch_load_problem(path, err)}; move it away or train with --no-resume "
            "(resume=False) to start again"
        ) from None
    if not isinstance(saved, dict) or not {"config", "model", "progress"} <= set(saved):
        raise ValueError(f"cannot resume from {path}: it is not a training state written by distill train")
    return saved


def state_step(path: Path) -> int | None:
    """The step a training state file was saved at (None when it is missing or unreadable)."""
    try:
        return int(torch.load(path, weights_only=True)["progress"]["step"])
    except Exception:  # noqa: BLE001 - only for a message
        return None


def _check_same_teacher(out: Path, saved: dict[str, Any], teacher: dict[str, Any] | None) -> None:
    """`ValueError` when the run being resumed learnt from another teacher than the labels given now (the saved
    state's fingerprint, or for states from before it was saved, that of `best.pt`)."""
    before = saved.get("teacher")
    if before is None and (out / "best.pt").is_file():
        before = torch.load(out / "best.pt", weights_only=True).get("metadata", {}).get("teacher")
    if before is not None and teacher is not None and not same_teacher(before, teacher):
        raise ValueError(
            f"{out} holds a run trained on labels of {describe_teacher(before)}; these labels come from "
            f"{describe_teacher(teacher)}. Resuming would mix teachers: use another output folder or --no-resume"
        )


def _meta(c: TrainConfig, metadata: dict | None, val: dict, step: int) -> dict[str, Any]:
    return {**(metadata or {}), "recipe": c.to_dict(), "validation": val, "step": step}


def _log(path: Path, row: dict[str, Any]) -> None:
    """Append a row to a CSV log, widening the header when new columns appear."""
    rows = []
    if path.is_file():
        with path.open() as f:
            rows = list(csv.DictReader(f))
    header = list(rows[0].keys()) if rows else []
    new = [k for k in row if k not in header]
    if new or not rows:
        header += new
        rows.append({k: row.get(k, "") for k in header})
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(rows)
    else:
        with path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=header).writerow({k: row.get(k, "") for k in header})


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))
