"""The paper as code: one declarative definition per table and figure, the experiment list
expanded from it, and the tables, figures, claims ledger and cost report rendered from
``results/runs``.

Modules (lower ones first; none imports a later one):

* ``definitions``: every table/figure record (title, metrics, rows as label + config change +
  note + the paper's values, smoke rows, rows skipped per scale, table order, figure rows).
* ``paper_numbers``: the paper's values as data frames (views of ``definitions``), the released
  per-image scores.
* ``experiments``: definitions expanded into run configs at a scale (rows, folds, model checks).
* ``run_plan``: the experiment list of some tables in priority order (batch runner, cost report).
* ``artifacts``: what a run record stores beside its scores (speed, cross-domain, figure maps).
* ``recorded_metrics``: a run record's summary, provenance and recorded columns in table units.
* ``table_files``: a built table's markdown and its ``.csv`` / ``.md`` / ``.json`` files.
* ``table_builder``: one table beside the paper's (mean +- std, paper columns, caption).
* ``claims``: the claims ledger on paired folds.
* ``cost``: the FLOP cost model and the measured cost report of an experiment list.
* ``tables``: every table at once: ``results/README.md`` and the project README block.
* ``plots``: plot style, the overlay colour scheme, saving figures.
* ``model_catalog``: model tables and the attention figure of notebook 02.
* ``figures``: qualitative grids, the alpha sweep, ablation dot plots, recorded figures.
* ``reproduce``: run the numbered notebooks through papermill and publish scrubbed copies.
"""
