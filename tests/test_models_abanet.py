"""ABANet (paper and released-code variants) and BASNet: graph, counts, shapes, gradients.

Most structural checks run on PyTorch's ``meta`` device (shapes and autograd graph without
arithmetic), so that the 87 M-parameter networks cost well under a second each; one real CPU
model checks values (gradients, padding, bf16 autocast).
"""
from __future__ import annotations

import pytest
import torch
import torchvision

from abanet_lib.models import pretrained as pretrained_mod
from abanet_lib.models.abanet import PAPER_STAGE_TO_ENCODER_STAGE, ABANet
from abanet_lib.models.basnet import BASNet
from abanet_lib.models.blocks import AttentionGate, RefinementModule, pad_to_multiple
from abanet_lib.models.inspect import count_flops, count_parameters, describe_stages
from abanet_lib.models.official import ABANetOfficial

BASNET_PARAMS = 87_060_360
REFINEMENT_PARAMS = 482_177
OFFICIAL_GATES_PARAMS = 396_803 + 100_099 + 25_475


def meta(cls, **kw):
    with torch.device("meta"):
        return cls(**kw)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def backward_no_grad(model, size: int = 64, batch: int = 1, device: str = "meta") -> int:
    """Train-mode forward/backward; number of parameters whose .grad stays None."""
    model.train()
    out = model(torch.randn(batch, 3, size, size, device=device))
    sum(o.float().mean() for o in out).backward()
    return sum(p.numel() for p in model.parameters() if p.grad is None)


@pytest.fixture(scope="module")
def real_abanet():
    torch.manual_seed(0)
    return ABANet()


# ------------------------------------------------------------------ counts
def test_basnet_parameter_count_matches_notes():
    model = meta(BASNet)
    assert n_params(model) == BASNET_PARAMS
    assert n_params(model.refinement) == REFINEMENT_PARAMS
    assert n_params(RefinementModule()) == REFINEMENT_PARAMS
    assert backward_no_grad(model) == 0
    quirk = meta(BASNet, share_stage6_bn=True)
    assert backward_no_grad(quirk) == 1024  # BASNet's own 6d BN is built but unused


#: The released graph's counts (shared/notes/official-code.md).
RELEASED_TOTAL, RELEASED_NO_GRAD = 87_583_870, 3_100_078

#: Parameters without gradient in the released graph, by layer (notes' names -> our modules).
RELEASED_UNUSED_BY_LAYER = {
    "decoder.stage4d.conv2.0": 1_179_904,  # conv4d_2 (512->256)
    "decoder.stage3d.conv1.0": 1_179_904,  # conv3d_1 (512->256)
    "decoder.stage3d.conv2.0": 295_040,    # conv3d_2 (256->128)
    "decoder.stage2d.conv1.0": 295_040,    # conv2d_1 (256->128)
    "decoder.stage2d.conv2.0": 73_792,     # conv2d_2 (128->64)
    "decoder.stage1d.conv1.0": 73_792,     # conv1d_1 (128->64)
    "side_heads.outconv2": 577,            # outconv2
    "decoder.stage4d.conv2.1": 512,        # bn4d_2
    "decoder.stage3d.conv2.1": 256,        # bn3d_2
    "decoder.stage2d.conv2.1": 128,        # bn2d_2
    "unused_gates.att1": 248,              # F_g = F_l = 14, F_int = 7
    "unused_gates.att2": 885,              # F_g = F_l = 28, F_int = 14
}


def test_official_counts_match_released_graph():
    model = meta(ABANetOfficial)
    assert n_params(model) == RELEASED_TOTAL == BASNET_PARAMS + OFFICIAL_GATES_PARAMS + 248 + 885
    assert backward_no_grad(model) == RELEASED_NO_GRAD == sum(RELEASED_UNUSED_BY_LAYER.values())
    assert count_parameters(model) == {"total": RELEASED_TOTAL, "trainable": RELEASED_TOTAL,
                                       "no_grad": RELEASED_NO_GRAD}


def test_official_unused_layers_are_the_notes_accounting():
    model = meta(ABANetOfficial)
    backward_no_grad(model)
    no_grad = {n: p.numel() for n, p in model.named_parameters() if p.grad is None}
    assert sorted(no_grad) == sorted(model.unused_parameter_names())
    by_layer = {layer: sum(c for n, c in no_grad.items() if n.startswith(layer + "."))
                for layer in RELEASED_UNUSED_BY_LAYER}
    assert by_layer == RELEASED_UNUSED_BY_LAYER
    assert sum(by_layer.values()) == sum(no_grad.values())  # nothing else lacks a gradient
    # stage 6d uses its own last BN (no BASNet quirk), so bn6d_2 is trained
    assert model.decoder.stage6d.conv2[1].weight.grad is not None
    gates = model.unused_gates
    assert [(g.W_g[0].in_channels, g.W_x[0].in_channels, g.W_g[0].out_channels)
            for g in gates.values()] == [(14, 14, 7), (28, 28, 14)]
    assert [n_params(AttentionGate(*c)) for c in ((14, 14, 7), (28, 28, 14))] == [248, 885]


def test_paper_variant_every_parameter_gets_gradient_structurally():
    for kw in ({"refine": False, "attention_stages": (3, 4, 5, 6)},
               {"deep_supervision": False}):
        model = meta(ABANet, **kw)
        assert backward_no_grad(model) == 0, kw


def test_gate_parameters_and_attention_count():
    gate = AttentionGate(512, 256, 512)
    assert n_params(gate) == 396_803  # (512+256+7)*512 + 3
    model = meta(ABANet)
    assert n_params(model) == BASNET_PARAMS + sum(n_params(g) for g in model.gates.values())


# ------------------------------------------------------------------ outputs and shapes
def test_number_of_outputs_train_and_eval():
    x = torch.empty(2, 3, 64, 64, device="meta")
    for kw, n_train in (({}, 8), ({"refine": False}, 7)):
        model = meta(ABANet, **kw).train()
        outs = model(x)
        assert len(outs) == n_train == len(model.output_names())
        assert all(o.shape == (2, 1, 64, 64) for o in outs)
        model.eval()
        assert model(x).shape == (2, 1, 64, 64)
        assert len(model(x, return_all=True)) == n_train
    single = meta(ABANet, deep_supervision=False).train()
    assert single(x).shape == (2, 1, 64, 64)
    official = meta(ABANetOfficial).train()
    assert len(official(x)) == 8
    assert official.eval()(x).shape == (2, 1, 64, 64)


@pytest.mark.parametrize("size", [64, 128, 256, 512])
def test_stage_shapes(size):
    table = describe_stages(meta(ABANet), size).set_index("block")
    expected = {
        "encoder.stem": (64, size), "encoder.stage1": (64, size),
        "encoder.stage2": (128, size // 2), "encoder.stage3": (256, size // 4),
        "encoder.stage4": (512, size // 8), "encoder.stage5": (512, size // 16),
        "encoder.stage6": (512, size // 32), "bridge": (512, size // 32),
        "decoder.stage6d": (512, size // 32), "decoder.stage5d": (512, size // 16),
        "decoder.stage4d": (256, size // 8), "decoder.stage3d": (128, size // 4),
        "decoder.stage2d": (64, size // 2), "decoder.stage1d": (64, size),
        "gates.4": (256, size // 4), "gates.5": (128, size // 2), "gates.6": (64, size),
        "refinement": (1, size),
    }
    for block, (channels, side) in expected.items():
        assert table.loc[block, "output_shape"] == (1, channels, side, side), block
    assert (table["calls"] == 1).all()
    assert table["params"].sum() == n_params(meta(ABANet))


def test_official_graph_shapes_and_reused_head():
    table = describe_stages(meta(ABANetOfficial), 64).set_index("block")
    assert table.loc["side_heads.outconv5", "calls"] == 2  # d5 and d4
    assert table.loc["side_heads.outconv2", "calls"] == 0  # built, unused
    assert (table.loc[["unused_gates.att1", "unused_gates.att2"], "calls"] == 0).all()
    assert table.loc["gates.gate3", "input_shape"] == (1, 256, 16, 16)
    assert table.loc["decoder.stage4d", "output_shape"] == (1, 512, 8, 8)  # middle conv


@pytest.mark.parametrize("stages, skips", [((5, 6), {5: (128, 32), 6: (64, 64)}),
                                           ((4, 5, 6), {4: (256, 16), 5: (128, 32),
                                                        6: (64, 64)}),
                                           ((3, 4, 5, 6), {3: (512, 8), 4: (256, 16),
                                                           5: (128, 32), 6: (64, 64)})])
def test_attention_stage_mapping(stages, skips):
    model = meta(ABANet, attention_stages=stages).train()
    model(torch.empty(2, 3, 64, 64, device="meta"))
    assert set(model.last_attention) == set(stages)
    for stage, (channels, side) in skips.items():
        assert model.last_attention[stage].shape == (2, 1, side, side)
        assert model.gates[str(stage)].W_x[0].in_channels == channels
        assert PAPER_STAGE_TO_ENCODER_STAGE[stage] == {3: 4, 4: 3, 5: 2, 6: 1}[stage]
    base = n_params(meta(ABANet, attention=False))
    assert n_params(model) - base == sum(n_params(g) for g in model.gates.values())
    assert meta(ABANet, attention=False).last_attention == {}


@pytest.mark.parametrize("bad", [(1,), (2, 4), (7,)])
def test_invalid_attention_stage_is_rejected(bad):
    with pytest.raises(ValueError, match="attention_stages"):
        ABANet(attention_stages=bad)


# ------------------------------------------------------------------ real values
def test_gradients_reach_gates_and_refinement(real_abanet):
    model = real_abanet.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    outs = model(torch.randn(2, 3, 32, 32))
    target = (torch.rand(2, 1, 32, 32) > 0.5).float()
    loss = sum(torch.nn.functional.binary_cross_entropy_with_logits(o, target) for o in outs)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    for name, gate in model.gates.items():
        assert gate.psi[0].weight.grad.abs().sum() > 0, name
        assert gate.W_g[0].weight.grad.abs().sum() > 0, name
    assert model.refinement.conv_out.weight.grad.abs().sum() > 0
    for stage, psi in model.last_attention.items():
        assert not psi.requires_grad and ((psi >= 0) & (psi <= 1)).all()
    model.zero_grad(set_to_none=True)


def test_odd_input_size_is_padded_and_cropped(real_abanet):
    model = real_abanet.eval()
    x = torch.randn(1, 3, 20, 27)
    with torch.no_grad():
        out = model(x)
        padded, size = pad_to_multiple(x)
        assert padded.shape[-2:] == (32, 32) and size == (20, 27)
        reference = model(padded)[..., :20, :27]
    assert out.shape == (1, 1, 20, 27)
    torch.testing.assert_close(out, reference)
    assert model.last_attention[6].shape == (1, 1, 32, 32)  # from the padded reference call


def test_bf16_autocast_and_channels_last(real_abanet):
    model = real_abanet.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x.contiguous(memory_format=torch.channels_last))
    assert low.shape == (1, 1, 32, 32) and torch.isfinite(low).all()
    # logits, not probabilities: same values up to bf16 precision
    assert (low.float() - ref).abs().max() <= 0.05 * ref.abs().max() + 0.05


# ------------------------------------------------------------------ inspection
def test_count_flops_scales_with_area_and_matches_conv_formula():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, 16) == 2 * 3 * 8 * 9 * 16 * 16
    small, large = count_flops(meta(ABANet), 64), count_flops(meta(ABANet), 128)
    assert large == 4 * small


# ------------------------------------------------------------------ pretrained weights
def test_pretrained_offline_error_names_path_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.delenv("ABANET_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(pretrained_mod.PretrainedWeightsError) as err:
        pretrained_mod.load_resnet34_imagenet(torchvision.models.resnet34(), allow_download=False)
    message = str(err.value)
    assert str(tmp_path / "hub" / "hub" / "checkpoints" / "resnet34-b627a593.pth") in message
    assert pretrained_mod.RESNET34_URL in message


def test_pretrained_loads_from_local_hub_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    torch.manual_seed(3)
    source = torchvision.models.resnet34(weights=None)
    path = pretrained_mod.resnet34_checkpoint_path()
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    target = torchvision.models.resnet34(weights=None)
    loaded = pretrained_mod.load_resnet34_imagenet(target, allow_download=False)
    assert loaded == len([k for k in source.state_dict() if k.startswith("layer")])
    torch.testing.assert_close(target.layer4[2].conv2.weight, source.layer4[2].conv2.weight)
    torch.testing.assert_close(target.layer1[0].bn1.running_mean,
                               source.layer1[0].bn1.running_mean)
    assert not torch.equal(target.conv1.weight, source.conv1.weight)  # stem is not loaded
