"""Model factory: names, builds, smp shapes, gradients and refusal messages."""
from __future__ import annotations

import pytest
import torch

from abanet_lib.models import (DESCRIPTIONS, MODELS, SMP_ARCHS, SMP_ENCODERS, create_model,
                               describe_model, list_models, parse_smp_name)
from abanet_lib.models.official import ABANetOfficial


pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.py


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_list_models_names_every_family_once():
    names = list_models()
    assert len(names) == len(set(names))
    for name in ("abanet", "abanet_official", "basnet", "unet_plain", "unet_din", "unet_geng",
                 "grabcut", "maskrcnn", "eunet", "dad", "einet"):
        assert name in names
    smp_names = [n for n in names if n.startswith("smp:")]
    assert len(smp_names) == len(SMP_ARCHS) * len(SMP_ENCODERS) - 1  # DeepLabV3Plus:vgg19 refused
    assert "smp:DeepLabV3Plus:vgg19" not in names
    assert "smp:PAN:vgg19" in names


def test_factory_maps_names_to_imported_classes():
    assert list(MODELS) == list(DESCRIPTIONS) == list_models()[:len(MODELS)]
    assert MODELS["abanet_official"] is ABANetOfficial
    with torch.device("meta"):
        assert type(create_model("abanet_official")) is ABANetOfficial


@pytest.mark.parametrize("name", list_models())
def test_every_name_builds_and_is_described(name):
    """Built on the meta device (no weight init, fast); counts must be plausible."""
    with torch.device("meta"):
        model = create_model(name)
    assert callable(getattr(model, "training_loss", None))
    desc = describe_model(name)
    assert isinstance(desc, str) and 20 < len(desc) < 300 and "\n" not in desc
    if name == "grabcut":
        assert model.trainable is False and n_params(model) == 0
    else:
        assert model.trainable is True and 1e6 < n_params(model) < 2e8


@pytest.mark.parametrize("name, reference, tol", [
    ("unet_plain", 31_037_633, 0),   # = milesial/Pytorch-UNet with 1 class (31.04 M)
    ("unet_geng", 31_037_633, 0),
    ("eunet", 31.0e6, 0.05),         # comparison notes, hand count ~31 M
    ("dad", 34.0e6, 0.05),           # comparison notes, hand count ~34 M
])
def test_parameter_counts_match_references(name, reference, tol):
    with torch.device("meta"):
        count = n_params(create_model(name))
    assert abs(count - reference) <= tol * reference


def test_stand_ins_say_so():
    assert "STAND-IN" in describe_model("einet")
    assert "stand-in" in describe_model("unet_din") and "stand-in" in describe_model("unet_geng")
    assert "stand-in" in describe_model("grabcut") and "stand-in" in describe_model("maskrcnn")


@pytest.mark.parametrize("arch", SMP_ARCHS)
def test_smp_arch_shapes_eval_and_train(arch):
    torch.manual_seed(0)
    model = create_model(f"smp:{arch}:resnet34")
    x = torch.randn(2, 3, 64, 64)
    model.train()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1, 64, 64)
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 1, 64, 64) and torch.isfinite(y).all()


def test_smp_gradients_reach_encoder_and_decoder():
    torch.manual_seed(0)
    model = create_model("smp:Unet:resnet34")
    x, target = torch.randn(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    loss = model.training_loss(x, target, torch.nn.functional.binary_cross_entropy_with_logits)
    loss.backward()
    assert torch.isfinite(loss)
    first_conv = model.net.encoder.conv1.weight.grad
    head = model.net.segmentation_head[0].weight.grad
    assert first_conv is not None and first_conv.abs().sum() > 0
    assert head is not None and head.abs().sum() > 0


def test_smp_vgg19_forward_small():
    model = create_model("smp:Unet:vgg19").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1, 64, 64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smp:Unet:efficientnet-b7", "smp:PAN:vgg19", "smp:DeepLabV3Plus:resnet50"])
def test_smp_heavy_encoders_forward_small(name):
    model = create_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_pan_vgg19_uses_output_stride_32_and_pads_small_inputs():
    with torch.device("meta"):
        model = create_model("smp:PAN:vgg19")
    assert model.min_side == 256  # 8 x output stride 32
    with torch.device("meta"):
        assert create_model("smp:PAN:resnet34").min_side == 128


@pytest.mark.parametrize("name, fragment", [
    ("smp:DeepLabV3Plus:vgg19", "vgg has no dilated variant"),
    ("smp:Segformer:resnet34", "valid ones: Unet, UnetPlusPlus, MAnet, Linknet, DeepLabV3Plus, PAN, FPN, PSPNet"),
    ("smp:Unet:resnet18", "valid ones: vgg19, resnet50, efficientnet-b7, resnet34"),
    ("smp:Unet", "expected 'smp:<Arch>:<encoder>'"),
    ("unet3000", "valid names: abanet"),
])
def test_refusals_explain_themselves(name, fragment):
    with pytest.raises(ValueError) as info:
        create_model(name)
    assert fragment in str(info.value)


def test_smp_names_are_canonicalised():
    assert parse_smp_name("smp:unet++:ResNet34") == ("UnetPlusPlus", "resnet34")
    assert parse_smp_name("smp:deeplabv3plus:efficientnet-b7") == ("DeepLabV3Plus", "efficientnet-b7")


def test_smp_input_size_not_multiple_of_32_is_refused():
    model = create_model("smp:Unet:resnet34").eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 48, 64))


def test_pretrained_offline_fails_clearly_smp(monkeypatch):
    import segmentation_models_pytorch.encoders as smp_encoders

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(smp_encoders, "hf_hub_download", offline)
    with pytest.raises(RuntimeError) as info:
        create_model("smp:Unet:resnet34", pretrained=True)
    message = str(info.value)
    assert "pretrained=True" in message and "Hugging Face Hub" in message and "pretrained=False" in message


def test_pretrained_offline_fails_clearly_torchvision(monkeypatch):
    import torchvision.models._api as tv_api

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with torch.device("meta"), pytest.raises(RuntimeError) as info:
        create_model("eunet", pretrained=True)
    assert "eunet: pretrained=True" in str(info.value) and "download.pytorch.org" in str(info.value)


# --- catalog (notebook 02's tables) ----------------------------------------------------
def test_count_flops_matches_hand_count():
    from abanet_lib.models.inspect import count_flops

    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, 8) == 2 * (3 * 9) * 8 * 8 * 8   # 2 x MACs


def test_decoder_table_of_the_paper_variant():
    from abanet_lib.paper.model_catalog import decoder_table

    table = decoder_table("abanet", 256)                     # meta device: shapes only
    assert table["decoder_stage"].tolist() == ["6d", "5d", "4d", "3d", "2d", "1d"]
    assert table["resolution"].tolist() == ["8x8", "16x16", "32x32", "64x64", "128x128", "256x256"]
    assert table["channels_in"].tolist() == [1024, 1024, 1024, 512, 256, 128]
    assert table["channels_out"].tolist() == [512, 512, 256, 128, 64, 64]
    assert [g != "-" for g in table["gated"]] == [False, False, False, True, True, True]
    gated_all = decoder_table("abanet", 64, attention_stages=(3, 4, 5, 6))
    assert (gated_all["gated"] != "-").sum() == 4


def test_model_table_values():
    from abanet_lib.paper.model_catalog import model_table

    table = model_table(["unet_plain", "grabcut"], image_size=64, flops=False).set_index("model")
    assert table.loc["unet_plain", "params_M"] == pytest.approx(31.037633)
    assert table.loc["grabcut", "params_M"] == 0 and not table.loc["grabcut", "trainable"]
