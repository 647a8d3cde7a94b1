"""ASE calculators over GemNet-OC students and teachers, and batched prediction for screening."""
