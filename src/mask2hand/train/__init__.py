"""Training: recipes and configs, the loop (resume, DDP), data set-up, curves and the ablation."""
