"""Command line: help texts, a smoke training run, list-runs, and notebook reproduction."""
from __future__ import annotations

import dataclasses
import json

import nbformat
import pytest

from abanet_lib import cli
from abanet_lib.core.config import RunConfig, get_scale


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_lists_commands_and_every_train_option(capsys):
    top = _help(capsys)
    for command in ("train", "evaluate", "predict", "reproduce", "results-readme", "list-runs"):
        assert command in top
    train_help = " ".join(_help(capsys, "train").split())  # undo line wrapping
    for f in dataclasses.fields(RunConfig):
        if f.name not in ("model_kwargs", "train_crops"):  # train_crops: the photo-model trainer's only
            assert f"--{f.name.replace('_', '-')}" in train_help
    assert "--train-crops" not in train_help
    assert "--model-kwargs" in train_help and "--force" in train_help
    assert "learning rate" in train_help and "adamax" in train_help
    repro = " ".join(_help(capsys, "reproduce").split())
    assert "--only" in repro and "--from" in repro and "executed/<scale>/" in repro


def test_config_from_args_applies_scale_then_overrides():
    args = cli.build_parser().parse_args(
        ["train", "--scale", "smoke", "--model", "unet_plain", "--model-kwargs", '{"base_channels": 4}',
         "--epochs", "2", "--fold", "1", "--loss", "focal,iou", "--grad-clip", "1.5", "--augment", "false",
         "--early-stopping", "none", "--device", "cpu"])
    cfg = cli.config_from_args(args)
    expected = get_scale("smoke").base_config(model="unet_plain", epochs=2, fold=1, loss=("focal", "iou"),
                                              grad_clip=1.5, augment=False, device="cpu").with_model(
        None, base_channels=4)
    assert cfg == expected and cfg.run_id == expected.run_id
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--model-kwargs", "[1, 2]"])


def test_predict_help_comes_from_the_predict_module(capsys):
    pytest.importorskip("abanet_lib.app.predict")
    assert "--run" in _help(capsys, "predict")


def test_smoke_train_through_cli_then_list_runs(tmp_results, data_mirror, capsys, monkeypatch):
    from abanet_lib.engine import evaluate as evaluate_mod
    from abanet_lib.engine.metrics import MetricAccumulator

    # Confusion metrics only: the salient-object metrics are tested in test_metrics and cost
    # most of this test's time at native size.
    monkeypatch.setattr(evaluate_mod, "_default_accumulator", lambda: MetricAccumulator(full=False))
    argv = ["train", "--scale", "smoke", "--model", "unet_plain", "--model-kwargs", '{"base_channels": 4}',
            "--max-train-images", "8", "--device", "cpu", "--precision", "fp32", "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    cfg = get_scale("smoke").base_config(model="unet_plain", max_train_images=8, precision="fp32",
                                         device="cpu").with_model(None, base_channels=4)
    folder = tmp_results / "results" / "runs" / cfg.run_id
    metrics = json.loads((folder / "metrics.json").read_text())
    assert f"run {cfg.run_id}: test iou {metrics['test']['iou']:.4f}" in out
    assert metrics["n_train"] == 8 and metrics["epochs_run"] == 1 and metrics["n_test"] == 8  # smoke caps eval images
    assert 0.0 <= metrics["test"]["iou"] <= 1.0
    assert cli.main(["list-runs", "--model", "unet_plain"]) == 0
    assert cfg.run_id in capsys.readouterr().out
    # the second call loads the finished run (no "epoch" progress, same numbers)
    assert cli.main(argv) == 0
    assert f"test iou {metrics['test']['iou']:.4f}" in capsys.readouterr().out


def test_evaluate_unknown_run_is_a_clear_error(tmp_results, capsys):
    assert cli.main(["evaluate", "--run", "abanet-000000000000"]) == 2
    assert "no complete run 'abanet-000000000000'" in capsys.readouterr().err


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "abanet", "display_name": "Python (abanet)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    first = nbformat.v4.new_code_cell('import os\nscale = os.environ.get("ABANET_SCALE", "reduced")')
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def test_reproduce_runs_in_order_and_names_failing_notebook_and_cell(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_ok.ipynb", "print('scale is', scale)")
    _notebook(nbs / "02_fails.ipynb", "x = 1", "raise ValueError('boom in cell two')")
    _notebook(nbs / "03_never.ipynb", "print('not reached')")
    (nbs / "notes.ipynb").write_text("{}")  # unnumbered: ignored
    out_dir = tmp_path / "executed"
    code = cli.main(["reproduce", "--scale", "smoke", "--notebooks-dir", str(nbs), "--out-dir", str(out_dir)])
    captured = capsys.readouterr()
    assert code == 1
    assert "[1/3] 01_ok.ipynb" in captured.out and "01_ok.ipynb done" in captured.out
    assert "notebook 02_fails.ipynb failed in cell" in captured.err
    assert "ValueError: boom in cell two" in captured.err
    assert "raise ValueError('boom in cell two')" in captured.err
    assert not (out_dir / "03_never.ipynb").exists()
    executed = nbformat.read(out_dir / "01_ok.ipynb", as_version=4)
    assert executed.metadata.papermill.parameters == {"scale": "smoke"}
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "scale is smoke" in printed

    from abanet_lib.paper.reproduce import find_notebooks

    assert [p.name for p in find_notebooks(nbs, start_from="2")] == ["02_fails.ipynb", "03_never.ipynb"]
    assert [p.name for p in find_notebooks(nbs, only=["03"])] == ["03_never.ipynb"]


def test_every_option_help_comes_from_the_runconfig_docstring():
    import dataclasses

    from abanet_lib.core.config import RunConfig, field_help

    helps = field_help()
    assert [f.name for f in dataclasses.fields(RunConfig) if f.name not in helps] == []
    assert helps["lr"] == "learning rate."
    assert helps["n_folds"] == "number of folds of the groupkfold split (the split seed is seed)."  # rST markup gone
    text = cli.build_parser(predict_options=False)._subparsers._group_actions[0].choices["train"].format_help()
    assert "schedule per epoch: none, cosine, step" in " ".join(text.split())
