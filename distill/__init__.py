"""Distillation of a teacher into a GemNet-OC student: training structures (`data`), the teacher-label cache
(`labels`), losses, training, block pruning, evaluation, the loss ablation and checkpoint summaries, on top of
`calculators` (models, batches, loading) and the structure builder (`screening.structures`).

Import from the modules (`distill.train`, `distill.labels`, ...): this package re-exports nothing, so the `distill`
console command starts without importing torch."""

__all__: list[str] = []
