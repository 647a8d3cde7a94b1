"""The `distill` app: model presets, structures, teacher labels, training, pruning, widening, evaluation, ablation and
checkpoint inspection. One module per subcommand; each imports torch and the library inside the command, so
`distill --help` stays fast."""

from __future__ import annotations

from calculators.cli.common import make_app
from distill.cli.ablate import ablate_cmd
from distill.cli.evaluate import evaluate_cmd
from distill.cli.generate import generate
from distill.cli.info import info
from distill.cli.label import label
from distill.cli.make_student import make_student_cmd
from distill.cli.pairs import pairs_cmd
from distill.cli.presets import presets
from distill.cli.prune import prune_cmd
from distill.cli.train import train_cmd
from distill.cli.widen import widen_cmd

app = make_app(
    "distill",
    "Distil a large GemNet-OC teacher into a compact, fast student.",
    {
        "presets": presets,
        "generate": generate,
        "label": label,
        "pairs": pairs_cmd,
        "train": train_cmd,
        "prune": prune_cmd,
        "widen": widen_cmd,
        "evaluate": evaluate_cmd,
        "ablate": ablate_cmd,
        "info": info,
        "make-student": make_student_cmd,
    },
)
