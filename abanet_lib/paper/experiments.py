"""Which runs reproduce which table: the table definitions expanded into run configs.

Every experiment is a list of :class:`~abanet_lib.core.config.RunConfig` built from
``scale.base_config()`` by a row of :mod:`abanet_lib.paper.definitions` (its config change,
applied to each fold/seed the row asks for); a run shared by several tables (the full ABANet
row of Tables 2 and 5-9, Table 4's first trial, ...) is the *same* config, hence the same run
id, hence trained once by :func:`abanet_lib.paper.runs.run_or_load`.

Which runs make up a row (``RowDefinition.per``, :func:`folds_for`):

* Every row the claims ledger compares (:data:`abanet_lib.paper.claims.CLAIMS`: ABANet,
  BASNet, DAD and the U-Net family of Table 2, every row of Tables 5-9 and Figure 7's paper
  alphas, the released-vs-paper rows, the pretraining contrast) runs on ``scale.claim_folds``:
  one fold list, so the ledger pairs them fold by fold (issue 15: 5 identity-disjoint folds at
  reduced scale). Rows no claim uses spend less: EU-Net and EINet on ``scale.folds``, the other
  smp rows and notebook 13's synthetic-data rows on ``scale.comparison_folds``, Figure 7's extra
  alpha on ``scale.ablation_folds`` (reduced: 3 / 1 / 1 folds), and four of the five
  EfficientNet-b7 rows are left out (``RowDefinition.skipped_at``, cost);
  ``notebook_scale(folds=..., run_skipped_rows=True)`` runs every row on the folds given.
  The seed stays 0 so the fold-f ABANet run is one config everywhere.
  Table 4 follows the paper's protocol: ``scale.trials`` trials, trial ``i`` with ``seed=i``
  and ``fold=i % n_folds`` (new weights *and* a new split each time).
* Smoke scale runs each table's ``smoke_rows`` so the notebook suite stays within a few
  minutes on a CPU; ``rows="all"`` lifts that.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from abanet_lib.core.config import RunConfig, Scale, get_scale
from abanet_lib.models import create_model, list_models
from abanet_lib.paper.definitions import TABLE_ORDER, RowDefinition, TableDefinition, abanet_config
from abanet_lib.paper.definitions import table as table_definition

#: Tables and figures with experiment rows, in the order the notebooks use them.
TABLES = TABLE_ORDER


@dataclass(frozen=True)
class ExperimentRow:
    """One row of a reproduced table, expanded at a scale.

    Attributes:
        table: table name (``"table2"`` ...).
        label: row label (the definition's).
        configs: the runs whose metrics are averaged into this row (folds/seeds/trials).
        paper_row: label of the paper's row this row is compared with (``None``: no paper value).
        paper_table: which paper table holds that row.
        not_built: reason why this row cannot be run here (model missing), else ``None``.
        skipped: reason why the scale leaves this row out of its list on purpose (cost; see
            ``RowDefinition.skipped_at``), else ``None``.
        note: short remark shown in the table (e.g. "stand-in", "lr 1e-2").
    """

    table: str
    label: str
    configs: tuple[RunConfig, ...]
    paper_row: str | None = None
    paper_table: str | None = None
    not_built: str | None = None
    skipped: str | None = None
    note: str = ""

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(c.run_id for c in self.configs)


# ---------------------------------------------------------------------------------------
# Model availability
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def model_status(name: str, model_kwargs: tuple = ()) -> str | None:
    """Return ``None`` when ``create_model(name, **kwargs)`` works here, else the reason.

    The model is built on the ``meta`` device (no memory, no weights), so this is cheap even for
    87 M-parameter networks; a model that cannot be built on ``meta`` is retried on the CPU.
    """
    if name not in list_models():
        return f"model {name!r} is not in abanet_lib.models.list_models()"
    kwargs = dict(RunConfig().with_model(name, **dict(model_kwargs)).model_kwargs_dict)
    try:
        with torch.device("meta"):
            create_model(name, **kwargs)
        return None
    except ImportError as err:  # a third-party package the model needs is missing here
        return f"{name} not built: {err}"
    except Exception:
        pass
    try:
        create_model(name, **kwargs)
        return None
    except Exception as err:
        return f"{name} not built ({type(err).__name__}: {err})"


def canonical_abanet(scale: Scale, fold: int = 0, seed: int = 0, device: str = "auto") -> RunConfig:
    """The full ABANet run of ``scale`` on ``fold`` (the row every table shares)."""
    return abanet_config(scale.base_config(fold=fold, seed=seed, device=device))


def folds_for(per: str, scale: Scale) -> list[dict]:
    """The (fold, seed) pairs of a row whose runs are ``per`` (``RowDefinition.per``)."""
    if per == "folds":
        return [{"fold": f, "seed": 0} for f in scale.folds]
    if per == "comparison":
        return [{"fold": f, "seed": 0} for f in scale.comparison_folds]
    if per == "ablation":
        return [{"fold": f, "seed": 0} for f in scale.ablation_folds]
    if per == "claim":
        return [{"fold": f, "seed": 0} for f in scale.claim_folds]
    if per == "trials":
        return [{"fold": i % scale.n_folds, "seed": i} for i in range(scale.trials)]
    if per == "seeds":  # own split is fixed ("given"): vary the seed; the fold picks the MFSD
        return [{"fold": f, "seed": i} for i, f in enumerate(scale.comparison_folds)]  # cross-test fold
    raise AssertionError(per)


def table_rows(table: str, scale: Scale | str | None = None, rows: Iterable[str] | str | None = None,
               device: str = "auto", check_models: bool = True) -> list[ExperimentRow]:
    """Every row of ``table`` with its run configs.

    Args:
        table: one of :data:`TABLES`.
        scale: a :class:`Scale` or its name (``None``: ``ABANET_SCALE``).
        rows: labels to keep; ``None`` = all rows, except at smoke scale where it means the
            definition's ``smoke_rows``; ``"all"`` = all rows at any scale.
        device: execution device written into every config (not part of the run id).
        check_models: mark rows whose model cannot be built here as ``not_built``.

    Returns:
        Rows in the paper's order.
    """
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    definition = table_definition(table)
    wanted = _wanted_rows(definition, scale, rows)
    return [expand_row(definition, row, scale, device, check_models) for row in definition.rows
            if row.label in wanted]


def expand_row(definition: TableDefinition, row: RowDefinition, scale: Scale, device: str = "auto",
               check_models: bool = True) -> ExperimentRow:
    """One row of a table definition at ``scale``: its configs, paper reference and status."""
    configs = tuple(row.change(scale.base_config(device=device, **fs)) for fs in folds_for(row.per, scale))
    paper_table, paper_row = ((definition.name, row.label) if row.paper
                              else row.compare_with or (None, None))
    return ExperimentRow(table=definition.name, label=row.label, configs=configs, paper_row=paper_row,
                         paper_table=paper_table,
                         not_built=model_status(configs[0].model, configs[0].model_kwargs) if check_models else None,
                         skipped=None if scale.run_skipped_rows else row.skipped_at.get(scale.name),
                         note=row.note_for(configs[0]))


def _wanted_rows(definition: TableDefinition, scale: Scale, rows) -> set[str]:
    labels = definition.labels
    if rows == "all":
        return set(labels)
    if rows is None:
        return set(definition.smoke_rows) if scale.name == "smoke" else set(labels)
    rows = [rows] if isinstance(rows, str) else list(rows)
    unknown = [r for r in rows if r not in labels]
    if unknown:
        raise ValueError(f"{definition.name}: unknown row(s) {unknown}; rows are {labels}")
    return set(rows)


def experiments(table: str, scale: Scale | str | None = None, rows: Iterable[str] | str | None = None,
                device: str = "auto") -> list[RunConfig]:
    """The run configs that reproduce ``table`` at ``scale`` (dedup'ed), leaving out rows that
    cannot be built here and rows the scale skips on purpose.

    Args:
        table: ``"table2"`` ... ``"table9"``, ``"fig7"``, ``"released_vs_paper"``, ``"synthetic"``.
        scale: a :class:`Scale` or its name (``None``: ``ABANET_SCALE``).
        rows: subset of row labels (see :func:`table_rows`).
        device: execution device for every config.
    """
    configs = [c for row in table_rows(table, scale, rows, device)
               if row.not_built is None and row.skipped is None for c in row.configs]
    return unique_configs(configs)


def all_experiments(scale: Scale | str | None = None, device: str = "auto",
                    rows: str | None = None) -> list[RunConfig]:
    """Every run of every table, in notebook order, each config once (by run id)."""
    return unique_configs(c for table in TABLES for c in experiments(table, scale, rows=rows, device=device))


def claim_run_ids(scale: Scale | str | None = None) -> set[str]:
    """Run ids of every row that runs on the claim folds (``RowDefinition.per == "claim"``)."""
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    return {c.run_id for table in TABLES for row in table_rows(table, scale, rows="all", check_models=False)
            if table_definition(table).row(row.label).per == "claim" and row.skipped is None
            for c in row.configs}


def unique_configs(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """``configs`` without repeated run ids, first occurrence kept (order preserved)."""
    seen, out = set(), []
    for cfg in configs:
        if cfg.run_id not in seen:
            seen.add(cfg.run_id)
            out.append(cfg)
    return out


def every_fold(scale: Scale) -> Scale:
    """``scale`` with every fold of its split for every row: committed records on any fold count
    (the claims ledger and the tables read them; the batch runner still plans the scale's folds).

    Example:
        >>> every_fold(get_scale("reduced")).folds
        (0, 1, 2, 3, 4)
    """
    if scale.split != "groupkfold":
        return scale
    return notebook_scale(scale, folds=range(scale.n_folds))


FOLD_FIELDS = ("folds", "ablation_folds", "comparison_folds", "claim_folds")


def has_own_folds(scale: Scale) -> bool:
    """Whether ``scale`` keeps the folds of the registered scale of its name (no ``folds=`` override)."""
    try:
        registered = get_scale(scale.name)
    except ValueError:  # a scale built by hand, not registered
        return False
    return all(getattr(scale, f) == getattr(registered, f) for f in FOLD_FIELDS)


def notebook_scale(scale: str | Scale | None = None, folds: Sequence[int] | None = None,
                   data_root: str | None = None, run_skipped_rows: bool = False) -> Scale:
    """Resolve a notebook's parameters into a :class:`Scale`.

    Args:
        scale: scale name or object (``None``: ``ABANET_SCALE``).
        folds: override of the main-row, comparison, ablation and claim folds (``None`` keeps the scale's).
        data_root: where data sets live; sets ``ABANET_DATA`` for this process when given.
        run_skipped_rows: also run the rows the table definitions leave out at this scale for
            cost (``RowDefinition.skipped_at``, e.g. four EfficientNet-b7 rows at reduced scale).
    """
    resolved = scale if isinstance(scale, Scale) else get_scale(scale)
    if folds is not None:
        folds = tuple(int(f) for f in ([folds] if isinstance(folds, int) else folds))
        bad = [f for f in folds if not 0 <= f < resolved.n_folds]
        if bad:
            raise ValueError(f"folds {bad} out of range: the {resolved.name} scale has {resolved.n_folds} folds")
        resolved = dataclasses.replace(resolved, folds=folds, ablation_folds=folds, comparison_folds=folds,
                                       claim_folds=folds)
    if run_skipped_rows:
        resolved = dataclasses.replace(resolved, run_skipped_rows=True)
    if data_root:
        os.environ["ABANET_DATA"] = str(data_root)
    return resolved
