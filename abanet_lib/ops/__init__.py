"""Logistics around the science: the batch runner (many runs, GPU workers) and the GPU bundle."""
