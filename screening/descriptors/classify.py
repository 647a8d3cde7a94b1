"""Funnel stages (``student:0.0,teacher:0.5``), the student-vs-teacher confusion matrix at the stage thresholds, and
recall of the teacher's shortlist by the student stage."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

STAGE_ROLES = ("student", "teacher", "dft")


@dataclass(frozen=True)
class Stage:
    """One funnel stage: who computes the metric (student, teacher, dft) and the threshold a surface must pass."""

    role: str
    threshold: float


def parse_stages(text: str) -> list[Stage]:
    """``"student:0.0,teacher:0.5"`` → stages in order. Roles: student, teacher, dft (the set's DFT energies), each
    at most once and in that order (each stage screens the survivors of the one before: a cheap model after an
    expensive one would only see what the expensive one kept); `ValueError` with the expected form otherwise."""
    stages: list[Stage] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        role, sep, thr = part.partition(":")
        role = role.strip().lower()
        if not sep or role not in STAGE_ROLES:
            raise ValueError(f"bad stage {part!r}: expected ROLE:THRESHOLD with ROLE in {STAGE_ROLES}")
        try:
            value = float(thr)
        except ValueError:
            raise ValueError(f"bad stage {part!r}: threshold {thr!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"bad stage {part!r}: threshold {thr!r} is not a finite number")
        if any(s.role == role for s in stages):
            raise ValueError(f"stage {role!r} given twice in {text!r}")
        stages.append(Stage(role, value))
    if not stages:
        raise ValueError("no stages given (e.g. --stages student:0.0,teacher:0.5)")
    order = [STAGE_ROLES.index(s.role) for s in stages]
    if order != sorted(order):
        given = ", ".join(s.role for s in stages)
        raise ValueError(
            f"stages {text!r} run {given}: stages go from the cheapest to the most expensive, student, then "
            "teacher, then dft (each screens the survivors of the one before; e.g. student:0.0,teacher:0.5)"
        )
    return stages


def stricter_stages(stages: Sequence[Stage], better: str) -> list[str]:
    """Notes for a cheap stage whose threshold is stricter than a later stage's (`better`: "higher" or "lower" metric
    values pass): it rejects surfaces the later, more accurate stage would pass before that stage sees them, so
    the funnel's shortlist can only lose them. A screening stage is usually as loose or looser (its model's error
    is larger). Empty when every stage is at least as loose as the ones after it."""
    notes = []
    for k, early in enumerate(stages):
        for late in stages[k + 1 :]:
            stricter = early.threshold > late.threshold if better == "higher" else early.threshold < late.threshold
            if stricter:
                op = "≥" if better == "higher" else "≤"
                notes.append(
                    f"the {early.role} stage ({op} {early.threshold:g}) is stricter than the {late.role} stage "
                    f"({op} {late.threshold:g}): surfaces the {late.role} would pass are rejected before it sees "
                    f"them; a screening stage is usually as loose or looser"
                )
    return notes


@dataclass(frozen=True)
class Confusion:
    """2×2 counts: `predicted` (e.g. the student stage) against `truth` (e.g. the teacher stage) over the surfaces
    both could evaluate. tp: both pass; fn: truth passes, predicted rejects; fp: predicted passes, truth rejects."""

    tp: int
    fn: int
    fp: int
    tn: int

    @property
    def n(self) -> int:
        """Surfaces counted."""
        return self.tp + self.fn + self.fp + self.tn

    @property
    def recall(self) -> float:
        """tp / (tp + fn): share of the truth's passes that the predicted stage keeps (NaN if none pass)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def precision(self) -> float:
        """tp / (tp + fp) (NaN if the predicted stage passes none)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def accuracy(self) -> float:
        """(tp + tn) / n."""
        return (self.tp + self.tn) / self.n if self.n else math.nan

    def to_dict(self) -> dict[str, float | int]:
        """Counts and rates."""
        return {
            "tp": self.tp, "fn": self.fn, "fp": self.fp, "tn": self.tn, "n": self.n,
            "recall": self.recall, "precision": self.precision, "accuracy": self.accuracy,
        }  # fmt: skip


def confusion(
    predicted: Mapping[str, float | None],
    truth: Mapping[str, float | None],
    passes_predicted: Callable[[float | None], bool],
    passes_truth: Callable[[float | None], bool],
) -> Confusion:
    """Confusion over ids with a finite value on both sides."""

    def ok(v: float | None) -> bool:
        return v is not None and math.isfinite(v)

    ids = [i for i in predicted if i in truth and ok(predicted[i]) and ok(truth[i])]
    tp = fn = fp = tn = 0
    for i in ids:
        p, t = passes_predicted(predicted[i]), passes_truth(truth[i])
        tp += p and t
        fn += t and not p
        fp += p and not t
        tn += not p and not t
    return Confusion(tp, fn, fp, tn)


def recall_of(shortlist: Iterable[str], kept: Iterable[str]) -> float:
    """|shortlist ∩ kept| / |shortlist| (NaN for an empty shortlist)."""
    short = set(shortlist)
    return len(short & set(kept)) / len(short) if short else math.nan


def top_k(ordered: Sequence[str], k: int) -> list[str]:
    """The first k ids."""
    return list(ordered[: max(0, k)])
