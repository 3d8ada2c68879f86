"""Training and evaluation machinery: losses, metrics, the one training loop (single process or
distributed), evaluation, and the run registry (records under ``results/runs``)."""
