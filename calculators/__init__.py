"""ASE calculators over GemNet-OC students and teachers, and batched prediction for screening.

Public API: `DistilledCalculator`, `TeacherCalculator`, `ModelCalculator`, `predict_many`, `relax_many`,
`RelaxResult`, `hessian_rows`, `infer_tags`, `build_neighbors`, `load_teacher`, `download_checkpoint`.
"""

from calculators.ase_calculator import ModelCalculator
from calculators.batched import RelaxResult, predict_many, relax_many
from calculators.calculators import (
    DEFAULT_STUDENT,
    DistilledCalculator,
    NoDefaultStudentError,
    TeacherCalculator,
)
from calculators.hessian import hessian_rows
from calculators.neighbors import build_neighbors, candidates_valid
from calculators.tags import infer_tags
from calculators.teachers import CheckpointError, CheckpointUnavailable, download_checkpoint, load_teacher

__all__ = [
    "DEFAULT_STUDENT",
    "CheckpointError",
    "CheckpointUnavailable",
    "DistilledCalculator",
    "ModelCalculator",
    "NoDefaultStudentError",
    "RelaxResult",
    "TeacherCalculator",
    "build_neighbors",
    "candidates_valid",
    "download_checkpoint",
    "hessian_rows",
    "infer_tags",
    "load_teacher",
    "predict_many",
    "relax_many",
]
