"""Experiment lists of the reproduction: sizes, shared rows, dedup, smoke subsets."""
from __future__ import annotations

import dataclasses

import pytest

from abanet_lib.paper import definitions as D
from abanet_lib.paper import experiments as E
from abanet_lib.core.config import RunConfig, get_scale


@pytest.fixture()
def all_buildable(monkeypatch):
    """Pretend every model builds (the model zoo is tested elsewhere; this keeps tests fast)."""
    monkeypatch.setattr(E, "model_status", lambda name, kwargs=(): None)


def rows(table, scale="reduced", **kw):
    return {r.label: r for r in E.table_rows(table, scale, check_models=False, **kw)}


def test_table2_has_every_paper_row_with_the_papers_encoders():
    from abanet_lib.paper.paper_numbers import TABLE2

    t2 = rows("table2")
    assert list(t2) == list(TABLE2.index)
    assert t2["Unet / Efficient-b7"].configs[0].model == "smp:Unet:efficientnet-b7"
    assert t2["Unet++ / VGG19"].configs[0].model == "smp:UnetPlusPlus:vgg19"
    assert t2["DeepLabV3+ / ResNet50"].configs[0].model == "smp:DeepLabV3Plus:resnet50"
    assert t2["PAN / VGG19"].configs[0].model == "smp:PAN:vgg19"
    assert [t2[k].configs[0].model for k in ("EINet / ResNet50", "EU-Net / ResNet-34", "DAD / ResNet50",
                                             "BASNet", "ABANet (ours)")] == ["einet", "eunet", "dad", "basnet", "abanet"]
    scale = get_scale("reduced")
    smp_rows = {label for label in t2 if t2[label].configs[0].model.startswith("smp:")}
    assert len(smp_rows) == 16 and scale.comparison_folds == (0,) and scale.folds == (0, 1, 2)
    assert scale.claim_folds == (0, 1, 2, 3, 4)
    # rows the ledger compares (ABANet, BASNet, DAD, the U-Net family) on the 5 claim folds,
    # EU-Net and EINet on the main folds, the other smp rows on the comparison fold; seed 0
    claimed = {"ABANet (ours)", "BASNet", "DAD / ResNet50"} | {
        label for label in smp_rows if label.split(" / ")[0] in ("Unet", "Unet++", "Linknet")}
    for label, row in t2.items():
        wanted = (scale.claim_folds if label in claimed else
                  scale.comparison_folds if label in smp_rows else scale.folds)
        assert [c.fold for c in row.configs] == list(wanted), label
        assert {c.seed for c in row.configs} == {0}
        assert all(c.image_size == scale.image_size and c.epochs == scale.epochs and not c.pretrained
                   for c in row.configs)


def test_table3_rows_are_table2_runs():
    t2, t3 = rows("table2"), rows("table3")
    assert list(t3) == ["EINet / ResNet50", "EU-Net / ResNet-34", "DAD / ResNet50", "BASNet", "ABANet (ours)"]
    for label, row in t3.items():
        assert row.run_ids == t2[label].run_ids


def test_table4_trials_vary_seed_and_split():
    t4 = rows("table4")
    assert [r.configs[0].model for r in t4.values()] == ["unet_din", "grabcut", "unet_geng", "maskrcnn", "abanet"]
    aba = t4["ABANet (ours)"].configs
    assert [(c.seed, c.fold) for c in aba] == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
    assert len(set(c.run_id for c in aba)) == 5
    paper = rows("table4", "paper")["ABANet (ours)"].configs  # trials 5 on 5 folds
    assert [(c.seed, c.fold) for c in paper] == [(i, i) for i in range(5)]


def test_the_full_abanet_row_is_one_config_in_every_table():
    for scale in ("smoke", "reduced", "paper"):
        canonical = E.canonical_abanet(get_scale(scale), fold=0)
        assert canonical.model == "abanet" and canonical.model_kwargs == ()
        shared = {
            "table2": "ABANet (ours)", "table3": "ABANet (ours)", "table4": "ABANet (ours)",
            "table5": "ABANet (ours)", "table6": "AG at stages 4,5,6 (ABANet)",
            "table7": "256x256 (ABANet)", "table8": "Adam (ABANet)",
            "table9": "Focal + SSIM + IoU (ABANet)", "fig7": "alpha=0.3 (ABANet)",
            "released_vs_paper": "abanet + paper loss (ABANet)", "synthetic": "train mfsd-sample (ABANet)",
        }
        for table, label in shared.items():
            first = rows(table, scale, rows="all")[label].configs[0]
            assert first == canonical, (scale, table)
            assert first.run_id == canonical.run_id


def test_ablation_rows_change_exactly_one_thing():
    base = E.canonical_abanet(get_scale("reduced"))
    t5 = rows("table5")
    assert t5["baseline"].configs[0].model_kwargs_dict == {"attention": False, "refine": False}
    assert t5["baseline+refinement"].configs[0].model_kwargs_dict == {"attention": False}
    assert t5["baseline+AG"].configs[0].model_kwargs_dict == {"refine": False}
    t6 = rows("table6")
    assert t6["AG at stages 5,6"].configs[0].model_kwargs_dict == {"attention_stages": [5, 6]}
    assert t6["AG at stages 3,4,5,6"].configs[0].model_kwargs_dict == {"attention_stages": [3, 4, 5, 6]}
    assert [r.configs[0].image_size for r in rows("table7").values()] == [32, 64, 128]
    assert [r.configs[0].image_size for r in rows("table7", "paper").values()] == [128, 256, 512]
    t8 = rows("table8")
    sgd = t8["SGD"].configs[0]
    assert (sgd.optimizer, sgd.lr, sgd.momentum) == ("sgd", 1e-2, 0.9)
    assert (t8["Adamax"].configs[0].optimizer, t8["Adamax"].configs[0].lr) == ("adamax", base.lr)
    assert [r.configs[0].loss for r in rows("table9").values()] == [
        ("focal",), ("iou",), ("focal", "iou"), ("focal", "ssim", "iou")]
    assert [r.configs[0].focal_alpha for r in rows("fig7").values()] == [0.1, 0.3, 0.5, 0.75, 0.9]
    rv = [(r.configs[0].model, r.configs[0].loss_variant) for r in rows("released_vs_paper").values()]
    assert rv == [("abanet", "paper"), ("abanet", "official"), ("abanet_official", "paper"),
                  ("abanet_official", "official")]
    for table in ("table5", "table6", "table7", "table8", "table9", "released_vs_paper"):  # claim rows: 5 folds
        assert all([c.fold for c in r.configs] == [0, 1, 2, 3, 4] for r in rows(table).values()), table
    fig7 = rows("fig7")  # the paper's alphas on the claim folds; our extra alpha=0.1 on one fold
    assert [len(r.configs) for r in fig7.values()] == [1, 5, 5, 5, 5]


def test_synthetic_rows_train_and_test_where_stated():
    syn = list(rows("synthetic").values())
    assert [(c.train_datasets, c.eval_dataset, c.split) for c in (r.configs[0] for r in syn)] == [
        (("mfsd-sample",), "mfsd-sample", "groupkfold"),
        (("maskedfacenet-seg500",), "maskedfacenet-seg500", "given"),
        (("mfsd-sample", "maskedfacenet-seg500"), "mfsd-sample", "groupkfold"),
    ]
    # given split: the seed varies; the fold names the MFSD fold the run is cross-tested on
    assert [(c.seed, c.fold) for c in syn[1].configs] == [(0, 0)]
    # equal data: synthetic-only trains on as many images as the real run; "both" mixes them 1:1
    matched = D.MATCHED_TRAIN_IMAGES["mfsd-sample"]
    assert [(c.max_train_images, c.extra_train_images) for c in (r.configs[0] for r in syn)] == [
        (None, None), (matched, None), (None, matched)]
    smoke = [r.configs[0] for r in E.table_rows("synthetic", "smoke", check_models=False)]
    assert smoke[1].max_train_images == get_scale("smoke").max_train_images  # the smaller cap wins
    assert rows("synthetic", "paper")["train both"].configs[0].extra_train_images is None
    # every row of the notebook on the comparison folds; asking for folds gives seed i on fold i
    syn3 = list(rows("synthetic", E.notebook_scale("reduced", folds=[0, 1, 2])).values())
    assert [(c.seed, c.fold) for c in syn3[1].configs] == [(0, 0), (1, 1), (2, 2)]
    assert all([c.fold for c in r.configs] == [0, 1, 2] for r in syn3)


def test_all_experiments_dedup_and_counts(all_buildable):
    cfgs = E.all_experiments("reduced")
    ids = [c.run_id for c in cfgs]
    assert len(ids) == len(set(ids))
    # table2: 7 U-Net-family rows (2 of their EfficientNet-b7 rows skipped) + BASNet + DAD + ABANet
    # on the 5 claim folds, EU-Net and EINet on 3 folds, 5 other smp rows on 1; table4: 4 new rows
    # x 5 trials + 4 new ABANet trials; tables 5-9 and released: their non-ABANet rows x 5 folds
    # (table5 3, table6 2, table7 2, table8 3, table9 3, released 3); fig7 3 x 5 + alpha 0.1 on 1;
    # synthetic 2 (its ABANet row is Table 2's fold 0); pretraining 2 x 5.
    table2 = 7 * 5 + 3 * 5 + 2 * 3 + 5
    assert len(cfgs) == table2 + 24 + 5 * (3 + 2 + 2 + 3 + 3 + 3) + 3 * 5 + 1 + 2 + 2 * 5 == 193
    # skipped rows run, comparison rows and notebook 13 on three folds: +26 runs
    three = dataclasses.replace(get_scale("reduced"), comparison_folds=(0, 1, 2), run_skipped_rows=True)
    assert len(E.all_experiments(three)) == 193 + 2 * 5 + 2 * 3 + 5 * 2 + 2 * 2 == 223
    # the notebooks' folds parameter puts every row, claim rows included, on those folds
    everything = E.notebook_scale("reduced", folds=[0, 1, 2], run_skipped_rows=True)
    assert len(E.all_experiments(everything)) == 21 * 3 + 24 + 3 * (3 + 2 + 2 + 3 + 3 + 4 + 3 + 2 + 2) == 159
    assert cfgs[0].model == "smp:Unet:efficientnet-b7"
    assert sum(c == E.canonical_abanet(get_scale("reduced")) for c in cfgs) == 1


def test_smoke_runs_a_documented_subset(all_buildable):
    smoke = get_scale("smoke")
    for table in E.TABLES:
        labels = [r.label for r in E.table_rows(table, smoke, check_models=False)]
        assert labels and set(labels) == set(D.TABLES[table].smoke_rows), table
    assert E.experiments("table5", smoke) == [E.canonical_abanet(smoke)]
    assert len(E.experiments("table5", smoke, rows="all")) == 4
    cfgs = E.all_experiments(smoke)
    assert all(c.image_size == 64 and c.epochs == 1 for c in cfgs)
    # table2: 2; table4: 2 trials x (Din, GrabCut); 12: official; 13: MaskedFace-Net;
    # pretraining: the small U-Net from scratch and from ImageNet
    assert len(cfgs) == 2 + 4 + 1 + 1 + 2
    heavy = [c for c in cfgs if c.model in ("abanet", "abanet_official")]
    assert len(heavy) == 3
    with pytest.raises(ValueError, match="unknown row"):
        E.experiments("table5", smoke, rows=["nope"])


def test_skipped_rows_are_listed_with_a_reason_but_not_run(all_buildable):
    t2 = rows("table2")
    skipped = {label: row.skipped for label, row in t2.items() if row.skipped}
    assert sorted(skipped) == ["DeepLabV3+ / Efficient-b7", "Linknet / Efficient-b7",
                               "MAnet / Efficient-b7", "Unet++ / Efficient-b7"]
    assert all("10 CPU-minutes a run" in reason for reason in skipped.values())
    assert t2["Unet / Efficient-b7"].skipped is None  # one row represents the encoder
    listed = {c.model for c in E.experiments("table2", "reduced")}
    assert "smp:Unet:efficientnet-b7" in listed and "smp:MAnet:efficientnet-b7" not in listed
    assert not any(r.skipped for r in rows("table2", "paper").values())
    lifted = E.notebook_scale("reduced", run_skipped_rows=True)
    assert "smp:MAnet:efficientnet-b7" in {c.model for c in E.experiments("table2", lifted)}


def test_not_built_rows_are_dropped_from_the_run_list(monkeypatch):
    monkeypatch.setattr(E, "model_status", lambda name, kwargs=(): "missing" if name == "einet" else None)
    labels = {r.label: r.not_built for r in E.table_rows("table2", "reduced")}
    assert labels["EINet / ResNet50"] == "missing" and labels["DAD / ResNet50"] is None
    assert not any(c.model == "einet" for c in E.experiments("table2", "reduced"))
    with pytest.raises(ValueError, match="unknown table"):
        E.experiments("table10", "reduced")


def test_model_status_names_the_problem():
    assert "not in abanet_lib.models.list_models" in E.model_status("no_such_model")


def test_abanet_config_drops_defaults_and_device_is_not_hashed(all_buildable):
    base = get_scale("reduced").base_config()
    assert E.abanet_config(base, attention_stages=[4, 5, 6], refine=True) == E.abanet_config(base)
    assert E.abanet_config(base, refine=False).model_kwargs == (("refine", False),)
    cpu = E.experiments("table9", "smoke", device="cpu")
    assert all(c.device == "cpu" for c in cpu)
    assert [c.run_id for c in cpu] == [c.run_id for c in E.experiments("table9", "smoke")]


def test_notebook_scale_overrides_folds(monkeypatch, tmp_path):
    monkeypatch.delenv("ABANET_DATA", raising=False)
    s = E.notebook_scale("reduced", folds=[1, 2], data_root=str(tmp_path))
    assert s.folds == s.ablation_folds == s.comparison_folds == s.claim_folds == (1, 2) and s.image_size == get_scale("reduced").image_size
    import os

    assert os.environ["ABANET_DATA"] == str(tmp_path)
    with pytest.raises(ValueError, match="out of range"):
        E.notebook_scale("reduced", folds=[7])


def test_runconfig_roundtrip_of_experiment_configs():
    for row in E.table_rows("table6", "reduced", check_models=False):
        cfg = row.configs[0]
        assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_later_config_fields_keep_the_committed_run_ids():
    canonical = E.canonical_abanet(get_scale("reduced"), fold=0)
    assert canonical.run_id == "abanet-1f2fbb4914d8"  # results/runs/abanet-1f2fbb4914d8 (Table 2, fold 0)
    assert "extra_train_images" not in canonical.canonical_json()
    mixed = canonical.replace(extra_train_images=150)
    assert '"extra_train_images":150' in mixed.canonical_json() and mixed.run_id != canonical.run_id


def test_synthetic_runs_train_on_matched_image_counts(data_mirror):
    from abanet_lib.engine.assembly import build_split

    reduced = get_scale("reduced")
    matched = D.MATCHED_TRAIN_IMAGES["mfsd-sample"]
    real = [build_split(E.canonical_abanet(reduced, fold=f)).train for f in range(reduced.n_folds)]
    assert [len(t) for t in real] == [matched] * reduced.n_folds
    _, synthetic_only, both = (r.configs[0] for r in E.table_rows("synthetic", reduced, check_models=False))
    train = build_split(synthetic_only).train
    assert len(train) == matched and {r.source for r in train} == {"maskedfacenet-seg500"}
    train = build_split(both).train
    assert train[:matched] == real[0]  # the real crops of fold 0, then as many synthetic ones
    assert len(train) == 2 * matched and {r.source for r in train[matched:]} == {"maskedfacenet-seg500"}
    assert len({r.image_path for r in train[matched:]}) == matched


def test_every_row_a_claim_compares_runs_on_the_claim_folds():
    """Issue 15: each claim rests on >= 5 paired folds; the rows no claim uses spend fewer."""
    from abanet_lib.paper.claims import CLAIMS, MIN_PAIRS

    scale = get_scale("reduced")
    assert len(scale.claim_folds) >= MIN_PAIRS
    claimed = {(c.table, label) for c in CLAIMS for pair in c.comparisons for label in pair}
    for table, label in claimed:
        per = D.table(table).row(label).per
        assert per in ("claim", "trials"), (table, label, per)
        row = {r.label: r for r in E.table_rows(table, scale, rows="all", check_models=False)}[label]
        assert len(row.configs) >= MIN_PAIRS, (table, label)
    # and no other row runs on the claim folds (folds go to the claims before breadth);
    # Table 3 shows Table 2's runs
    for name in E.TABLES:
        for row in D.table(name).rows:
            if row.per == "claim" and name != "table3":
                assert (name, row.label) in claimed, (name, row.label)


def test_claim_folds_come_before_other_folds_in_the_run_plan():
    from abanet_lib.paper import run_plan

    scale = get_scale("reduced")
    plan = run_plan.priority_plan(list(E.TABLES), scale)
    tiers = [p.tier for p in plan]
    assert tiers == sorted(tiers)
    claim = [p for p in plan if p.tier == run_plan.TIER_CLAIM_FOLDS]
    canonical = {E.canonical_abanet(scale, fold=f).run_id for f in scale.claim_folds}
    # the canonical ABANet's other folds open the claim tier; then the cheapest claim (the small
    # pretraining U-Net), then Table 5's rows, fold by fold
    assert {p.run_id for p in claim[:4]} == canonical - {E.canonical_abanet(scale, fold=0).run_id}
    assert all(p.tables == ("pretraining",) for p in claim[4:12])
    table5 = claim[12:24]
    assert all("table5" in p.tables for p in table5)
    assert [p.config.fold for p in table5] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    # EU-Net's third fold (no claim compares EU-Net) waits behind every claim run
    eunet = [i for i, p in enumerate(plan) if p.config.model == "eunet" and p.config.fold == 2]
    assert eunet and eunet[0] > max(plan.index(p) for p in claim)
