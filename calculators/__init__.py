"""The foundation of catdistill: the batched model contract, the models (GemNet-OC, SevenNet-0), the model
registry and `load_model`, ASE calculators, batched prediction and relaxation, Hessian rows, and the file, hash
and parsing helpers the other packages share. Nothing here imports `distill` or `screening`."""

from calculators.ase_calculator import DistilledCalculator, ModelCalculator, TeacherCalculator
from calculators.batch import AtomsBatch, StructureError, UnphysicalStructureWarning
from calculators.batched import RelaxResult, predict_many, relax_many
from calculators.fingerprint import model_fingerprint
from calculators.gemnet import CheckpointError
from calculators.hessian import hessian_rows
from calculators.loading import (
    DEFAULT_STUDENT,
    DEFAULT_TEACHER,
    NoDefaultStudentError,
    load_model,
)
from calculators.model_api import AtomisticModel, NeighborCandidates
from calculators.neighbors import build_neighbors, candidates_valid
from calculators.registry import CheckpointUnavailable, cached_checkpoint, download_checkpoint, load_registry
from calculators.sevennet import SevenNetModel
from calculators.tags import infer_tags

__all__ = [
    "DEFAULT_STUDENT",
    "DEFAULT_TEACHER",
    "AtomisticModel",
    "AtomsBatch",
    "CheckpointError",
    "CheckpointUnavailable",
    "DistilledCalculator",
    "ModelCalculator",
    "NeighborCandidates",
    "NoDefaultStudentError",
    "RelaxResult",
    "SevenNetModel",
    "StructureError",
    "TeacherCalculator",
    "UnphysicalStructureWarning",
    "build_neighbors",
    "cached_checkpoint",
    "candidates_valid",
    "download_checkpoint",
    "hessian_rows",
    "infer_tags",
    "load_model",
    "load_registry",
    "model_fingerprint",
    "predict_many",
    "relax_many",
]
