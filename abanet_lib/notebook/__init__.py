"""Helpers used only by the notebooks: table views, interactive widgets, training plots."""
