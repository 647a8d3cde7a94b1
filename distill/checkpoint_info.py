"""What a GemNet-OC checkpoint holds, for `distill info`: architecture, parameters, the training recipe, the
teacher's fingerprint and the recorded metrics (project checkpoints keep them in their metadata)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from calculators.gemnet import PRESETS, GemNetOCConfig, count_parameters, load_project_checkpoint, preset
from calculators.gemnet.checkpoint import fairchem_config, read_checkpoint

RECIPE = "recipe"  # metadata key of the TrainConfig (distill.train)
TEACHER = "teacher"  # metadata key of the teacher's fingerprint (calculators.fingerprint)


def _is_metrics(key: str, value: Any) -> bool:
    """Metadata entries holding evaluation results: `validation`, the held-out ones and the benchmark."""
    return isinstance(value, dict) and (key in ("validation", "benchmark") or "heldout" in key)


@dataclass
class CheckpointInfo:
    """Summary of one checkpoint file."""

    path: str
    format: str
    architecture: str
    preset: str | None
    parameters: int
    config: dict[str, Any]
    recipe: dict[str, Any] | None = None
    teacher: dict[str, Any] | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    other_metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def to_text(self) -> str:
        """Human-readable lines."""
        c = self.config
        strict = "strict" if c["enforce_max_neighbors_strictly"] else "non-strict"
        lines = [
            f"checkpoint    {self.path}",
            f"format        {self.format}",
            f"architecture  {self.architecture}" + (f" (preset {self.preset})" if self.preset else ""),
            f"parameters    {self.parameters:,}",
            f"graph         {c['num_blocks']} blocks, atom {c['emb_size_atom']} / edge {c['emb_size_edge']}, cutoff "
            f"{c['cutoff']:g} Å, {c['max_neighbors']} neighbours ({strict}, "
            f"{c.get('neighbor_symmetrization', 'reference')} symmetrisation), "
            + (
                ("direct forces" + (", net force removed" if c.get("zero_net_force") else ""))
                if c["direct_forces"]
                else "forces = -dE/dx"
            )
            + (", quadruplets" if c["quad_interaction"] else ""),
        ]
        if self.teacher:
            t = self.teacher
            versions = ", ".join(f"{k} {v}" for k, v in sorted(t.get("versions", {}).items()))
            lines.append(f"teacher       {t.get('name')} ({t.get('class')}; {versions})")
            if t.get("weights_sha256"):
                lines.append(f"              weights sha256 {t['weights_sha256']}")
        else:
            lines.append("teacher       (not recorded)")
        if self.recipe:
            lines.append("recipe")
            lines += [f"  {k}: {json.dumps(v)}" for k, v in self.recipe.items()]
        else:
            lines.append("recipe        (not recorded)")
        if self.metrics:
            lines.append("metrics")
            for name, values in self.metrics.items():
                if isinstance(values.get("targets"), list):  # a benchmark: one line per judged number
                    lines.append(f"  {name}:")
                    lines += [
                        f"    {t['status']:7s} {t['name']}: {_fmt(t['value'])} {t['unit']} (target {t['op']} "
                        f"{_fmt(t['target'])})"
                        for t in values["targets"]
                    ]
                    continue
                shown = ", ".join(f"{k} {_fmt(v)}" for k, v in values.items())
                lines.append(f"  {name}: {shown}")
        if self.other_metadata:
            lines.append("metadata")
            for key, value in self.other_metadata.items():
                lines.append(f"  {key}: {value if isinstance(value, str | int | float) else json.dumps(value)}")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _preset_name(config: GemNetOCConfig) -> str | None:
    return next((name for name in PRESETS if preset(name).to_dict() == config.to_dict()), None)


def checkpoint_info(path: str | os.PathLike) -> CheckpointInfo:
    """Summarise a project or fairchem GemNet-OC checkpoint (`CheckpointError` for anything else)."""
    ckpt = read_checkpoint(path)
    if "format_version" in ckpt:
        model, meta = load_project_checkpoint(ckpt)
        config = model.config
        return CheckpointInfo(
            path=str(path),
            format=f"catdistill project checkpoint, format {ckpt['format_version']}",
            architecture=str(ckpt["architecture"]),
            preset=_preset_name(config),
            parameters=model.num_parameters(),
            config=config.to_dict(),
            recipe=meta.get(RECIPE),
            teacher=meta.get(TEACHER),
            metrics={k: v for k, v in meta.items() if _is_metrics(k, v)},
            other_metadata={k: v for k, v in meta.items() if k not in (RECIPE, TEACHER) and not _is_metrics(k, v)},
        )
    config = fairchem_config(ckpt)
    return CheckpointInfo(
        path=str(path),
        format="fairchem checkpoint",
        architecture="gemnet_oc",
        preset=_preset_name(config),
        parameters=count_parameters(config)[0],
        config=config.to_dict(),
    )
