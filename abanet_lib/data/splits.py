"""Train/val/test splits with a fixed seed.

Schemes:
    * ``"groupkfold"``: groups (identities) are dealt into ``n_folds`` folds of similar sample
      counts; fold ``fold`` is the test set; ``val_fraction`` of the remaining *groups'* samples
      is carved out for validation. One identity is never on two sides.
    * ``"paper"``: the paper's proportions 8500 / 2500 / 1758 (of 12758), scaled to the data
      set size. The paper drew images at random; here whole groups are drawn (for full MFSD a
      group is one photo), so counts match the proportions up to one group's size. ``fold``
      is ignored; vary ``seed`` for new trials.
    * ``"given"``: the data set's own ``subset`` labels (``training`` -> train, with val carved
      from the training groups; ``testing`` -> test).
Results do not depend on the order of ``refs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PAPER_COUNTS = (8500, 2500, 1758)


@dataclass
class Split:
    """The train, validation and test sample references of a data set or of a run.

    :func:`split_samples` makes three identity-disjoint lists of one data set, each sorted by
    (source, name); a run's split (:func:`abanet_lib.engine.assembly.build_split`) is the same
    concept after adding other data sets' training samples and seeded caps.
    """

    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    test: list = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def groups(self, part: str) -> set[str]:
        return {r.group for r in getattr(self, part)}


def _key(ref) -> tuple:
    return (ref.source, ref.name)


def _group_table(refs) -> dict[tuple, list]:
    """``{(source, group): refs}``; groups of different data sets never merge."""
    table: dict[tuple, list] = {}
    for ref in sorted(refs, key=_key):
        table.setdefault((ref.source, ref.group), []).append(ref)
    return table


def _shuffled_groups(table: dict, rng: np.random.Generator) -> list[tuple]:
    keys = sorted(table)
    order = rng.permutation(len(keys))
    return [keys[i] for i in order]


def _take_groups(groups: list, table: dict, target: float) -> tuple[list, list]:
    """Take groups (in order) until their sample count is closest to ``target``."""
    taken, count = [], 0
    rest = list(groups)
    while rest and target > 0:
        size = len(table[rest[0]])
        # stop when adding the next group moves us further from the target
        if count and abs(count + size - target) > abs(count - target):
            break
        taken.append(rest.pop(0))
        count += size
    return taken, rest


def _flatten(groups, table) -> list:
    return sorted((r for g in groups for r in table[g]), key=_key)


def _carve_val(groups: list, table: dict, val_fraction: float, rng: np.random.Generator) -> tuple[list, list]:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}; expected 0 <= val_fraction < 1")
    n = sum(len(table[g]) for g in groups)
    shuffled = [groups[i] for i in rng.permutation(len(groups))]
    val, train = _take_groups(shuffled, table, val_fraction * n)
    if not train:  # never leave training empty
        train, val = val[-1:], val[:-1]
    return train, val


def split_samples(refs, scheme: str = "groupkfold", n_folds: int = 5, fold: int = 0, seed: int = 0,
                  val_fraction: float = 0.15) -> Split:
    """Split sample refs into train / val / test.

    Args:
        refs: SampleRef list (any data sets; groups are keyed by (source, group)).
        scheme: ``"groupkfold"``, ``"paper"`` or ``"given"`` (see module docstring).
        n_folds: number of folds (``groupkfold``).
        fold: index of the test fold, 0 <= fold < n_folds (``groupkfold``).
        seed: split seed.
        val_fraction: share of the non-test samples (whole groups) used for validation.

    Returns:
        Split(train, val, test).

    Raises:
        ValueError: unknown scheme, bad fold, too few groups, refs without subset for "given".
    """
    refs = list(refs)
    if not refs:
        raise ValueError("split_samples: no samples to split")
    names = [_key(r) for r in refs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise ValueError(f"split_samples: duplicate sample names {dup}; expected unique (source, name)")
    table = _group_table(refs)
    rng = np.random.default_rng(seed)

    if scheme == "groupkfold":
        if n_folds < 2 or not 0 <= fold < n_folds:
            raise ValueError(f"groupkfold: n_folds={n_folds}, fold={fold}; expected n_folds >= 2 and 0 <= fold < n_folds")
        if len(table) < n_folds:
            raise ValueError(f"groupkfold: only {len(table)} groups for {n_folds} folds")
        groups = _shuffled_groups(table, rng)
        # largest groups first (stable on the shuffled order), each to the emptiest fold
        groups.sort(key=lambda g: -len(table[g]))
        folds: list[list] = [[] for _ in range(n_folds)]
        counts = [0] * n_folds
        for g in groups:
            i = int(np.argmin(counts))
            folds[i].append(g)
            counts[i] += len(table[g])
        test_groups = folds[fold]
        rest = sorted(g for i, f in enumerate(folds) if i != fold for g in f)
        train_groups, val_groups = _carve_val(rest, table, val_fraction, rng)
        return Split(_flatten(train_groups, table), _flatten(val_groups, table), _flatten(test_groups, table))

    if scheme == "paper":
        total = sum(PAPER_COUNTS)
        n = len(refs)
        groups = _shuffled_groups(table, rng)
        test_groups, rest = _take_groups(groups, table, n * PAPER_COUNTS[2] / total)
        val_groups, train_groups = _take_groups(rest, table, n * PAPER_COUNTS[1] / total)
        return Split(_flatten(train_groups, table), _flatten(val_groups, table), _flatten(test_groups, table))

    if scheme == "given":
        subsets = {r.subset for r in refs}
        if not subsets <= {"training", "testing"} or "testing" not in subsets or "training" not in subsets:
            raise ValueError(f"'given' split needs refs with subset 'training' and 'testing'; found {sorted(subsets)}")
        train_table = _group_table([r for r in refs if r.subset == "training"])
        test = sorted((r for r in refs if r.subset == "testing"), key=_key)
        leak = set(train_table) & {(r.source, r.group) for r in test}
        if leak:
            raise ValueError(f"'given' split: groups on both sides {sorted(leak)[:5]}")
        train_groups, val_groups = _carve_val(sorted(train_table), train_table, val_fraction, rng)
        return Split(_flatten(train_groups, train_table), _flatten(val_groups, train_table), test)

    raise ValueError(f"unknown split scheme {scheme!r}; expected 'groupkfold', 'paper' or 'given'")
