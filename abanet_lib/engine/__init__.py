"""Training and evaluation machinery: losses, metrics, run assembly (split, model, data,
optimizer), the one training loop (single process or distributed), its checkpoints, evaluation,
and the run registry (records under ``results/runs``)."""
