"""GemNet-OC in plain PyTorch, student presets, distillation losses and training."""
