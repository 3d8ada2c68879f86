"""The experiment list of some tables in priority order: what the batch runner executes
(:mod:`abanet_lib.ops.batch_runner`) and the cost report prices (:mod:`abanet_lib.paper.cost`).

Priority tiers, lower first: the main ABANet/BASNet rows of the first fold, ablations of the
first fold, the other Table 2 rows of the first fold, Table 4's trials, the other folds of the
rows the claims ledger compares (issue 15: folds go to the claims before breadth), then the
remaining folds (the main models' folds first). A run asked for by several tables is planned
once, at its best tier. :func:`duration_key` groups runs that take about the same time.

Within the claim tier the canonical ABANet's folds come first (every claim pairs with them),
then the claims table by table in :data:`CLAIM_TABLE_ORDER`, fold by fold inside a table (a
partial list still gives every row of a table the same folds).
"""
from __future__ import annotations

from dataclasses import dataclass

from abanet_lib.core.config import RunConfig, Scale
from abanet_lib.paper.experiments import canonical_abanet, claim_run_ids, experiments

#: Models of the main rows (their Table 2 runs of the first fold come first).
MAIN_MODELS = ("abanet", "basnet")

# Priority tiers (lower runs first).
TIER_MAIN, TIER_ABLATION, TIER_COMPARISON, TIER_TRIALS, TIER_CLAIM_FOLDS, TIER_OTHER_FOLDS = range(6)
TIER_NAMES = {TIER_MAIN: "main rows, first fold", TIER_ABLATION: "ablations, first fold",
              TIER_COMPARISON: "table2 comparisons, first fold", TIER_TRIALS: "table4 trials",
              TIER_CLAIM_FOLDS: "claim rows, other folds", TIER_OTHER_FOLDS: "remaining folds"}

#: Order in which the claims' tables get their other folds, cheapest claim first, so that a list
#: stopped part-way has settled as many claims as its CPU-hours allow: the pretraining contrast
#: (8 runs of a 3.6 M-parameter U-Net), the claims whose added runs are all ABANet-sized (Table 5
#: settles two claims with 12 runs, Table 6 one with 8, Tables 8, 9, Figure 7 and the released
#: code one each with 12), then Table 2 (BASNet and seven smp rows per fold) and Table 7 (its 2S
#: row trains on 4x the pixels).
CLAIM_TABLE_ORDER = ("pretraining", "table5", "table6", "table8", "table9", "fig7", "released_vs_paper",
                     "table2", "table7")


@dataclass(frozen=True)
class PlannedRun:
    """One entry of the work list: the config, the tables asking for it, its priority tier."""

    config: RunConfig
    tables: tuple
    tier: int

    @property
    def run_id(self) -> str:
        return self.config.run_id

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "tables": list(self.tables), "tier": self.tier}

    @classmethod
    def from_dict(cls, d: dict) -> "PlannedRun":
        return cls(RunConfig.from_dict(d["config"]), tuple(d["tables"]), int(d["tier"]))


def tier_of(cfg: RunConfig, table: str, main_ids: set, first_fold: int, claim_ids: set = frozenset()) -> int:
    """Priority tier of ``cfg`` requested by ``table`` (see the module docstring)."""
    first = cfg.fold == first_fold
    if first and cfg.run_id in main_ids:
        return TIER_MAIN
    if table == "table4":
        return TIER_TRIALS
    if not first:
        return TIER_CLAIM_FOLDS if cfg.run_id in claim_ids else TIER_OTHER_FOLDS
    return TIER_COMPARISON if table == "table2" else TIER_ABLATION


def main_run_ids(scale: Scale, table2: list[RunConfig] | None = None) -> set:
    """Run ids of the main ABANet/BASNet rows: their Table 2 configurations."""
    if table2 is None:
        table2 = experiments("table2", scale)
    return {c.run_id for c in table2 if c.model in MAIN_MODELS}


def priority_plan(tables: list[str], scale: Scale, by_table: dict | None = None,
                  rows: str | None = None, claim_ids: set | None = None) -> list[PlannedRun]:
    """Experiments of ``tables`` at ``scale``, deduplicated by run id, in priority order.

    Args:
        tables: table names understood by :func:`abanet_lib.paper.experiments.experiments`.
        scale: a :class:`~abanet_lib.core.config.Scale`.
        by_table: ``{table: [RunConfig]}`` to use instead of calling ``experiments`` (tests).
        rows: passed to ``experiments`` (``"all"`` lifts the smoke scale's row subset).
        claim_ids: run ids of the claim rows (default: :func:`~abanet_lib.paper.experiments.claim_run_ids`).

    Returns:
        Planned runs sorted by (tier, order of first appearance). A run asked for by several
        tables keeps its best tier and lists every table.
    """
    if by_table is None:
        by_table = {t: experiments(t, scale, rows=rows) for t in tables}
    main_ids = main_run_ids(scale, by_table.get("table2"))
    if claim_ids is None:
        claim_ids = claim_run_ids(scale)
    canonical_ids = {canonical_abanet(scale, fold=f).run_id for f in scale.claim_folds}
    first_fold = scale.folds[0] if scale.folds else 0
    entries: dict[str, dict] = {}
    for table in tables:
        for cfg in by_table[table]:
            tier = tier_of(cfg, table, main_ids, first_fold, claim_ids)
            entry = entries.setdefault(cfg.run_id, {"config": cfg, "tables": [], "tier": tier,
                                                    "order": len(entries)})
            entry["tier"] = min(entry["tier"], tier)
            if table not in entry["tables"]:
                entry["tables"].append(table)

    def claim_group(e: dict) -> int:
        if e["config"].run_id in canonical_ids:
            return -1
        ranks = [CLAIM_TABLE_ORDER.index(t) for t in e["tables"] if t in CLAIM_TABLE_ORDER]
        return min(ranks, default=len(CLAIM_TABLE_ORDER))

    def key(e: dict) -> tuple:
        # Claim folds: canonical ABANet first, then table by table, fold by fold. Among the
        # remaining folds, the main models' folds come first (they give the mean +- std of the
        # headline rows), then everything else fold by fold.
        if e["tier"] == TIER_CLAIM_FOLDS:
            return (e["tier"], claim_group(e), e["config"].fold, e["order"])
        later = e["tier"] == TIER_OTHER_FOLDS
        return (e["tier"], later and e["config"].model not in MAIN_MODELS,
                e["config"].fold if later else 0, e["order"])

    ordered = sorted(entries.values(), key=key)
    return [PlannedRun(e["config"], tuple(e["tables"]), e["tier"]) for e in ordered]


def duration_key(cfg: RunConfig) -> str:
    """Runs with the same key take about the same time (same network, input, schedule and training data)."""
    return (f"{cfg.model}|{cfg.model_kwargs}|{cfg.image_size}|{cfg.epochs}|{cfg.batch_size}|"
            f"{'+'.join(cfg.train_datasets)}|{cfg.max_train_images}"
            + (f"|extra {cfg.extra_train_images}" if cfg.extra_train_images is not None else ""))
