"""ABANet as wired in the authors' released code (``ABANetOfficial``).

Source of the facts: ``shared/notes/official-code.md`` (the code itself is not available here).
The released network is BASNet's code with attention gates added:

* Encoder, bridge, decoder stages 6d, 5d, 4d: BASNet's (``blocks``). Stage 6d uses its own
  last BN (bn6d_2); BASNet's quirk of applying stage 5d's BN there (``BASNet(share_stage6_bn=
  True)``) is not in the released ABANet graph.
* Gate 3 (paper stage 4): g = stage 4d after its middle conv (512 ch, H/8), x = h3 (256, H/4).
  Its output goes straight into stage 3d's FIRST BN + ReLU: conv3d_1 (512->256) is skipped,
  so the deep decoder features reach the fine stages only through psi. Stage 3d then runs its
  middle conv (256, H/4), which is both the gating signal of gate 2 (x = h2, 128, H/2) and the
  feature of side output d3. Gate 2 feeds stage 2d's first BN + ReLU, stage 2d's middle conv
  (128, H/2) gates h1 (64, H) in gate 1, whose output feeds stage 1d's first BN + ReLU; stage 1d
  then runs its middle and last convs (64, H) -> d1 -> refinement.
* Side outputs of stages 4d, 3d, 2d are taken after their middle conv (512, 256, 128 ch), so the
  last conv of these stages is never run; d4 (512 ch) reuses stage 5d's head, d3 uses BASNet's
  256-ch head (outconv4), d2 BASNet's 128-ch head (outconv3), d1 BASNet's outconv1; BASNet's
  64-ch outconv2 is not used.
* Gates: W_g 1x1 (F_g -> F_int) + BN, W_x 1x1 stride 2 (F_l -> F_int) + BN, psi 1x1 -> 1 + BN +
  sigmoid, bilinear x2, x * psi, with F_int = F_g (512, 256, 128).
* Two more gates of the same form are built but never called (``unused_gates``): ``att1``
  (F_g = F_l = 14, F_int = 7) and ``att2`` (F_g = F_l = 28, F_int = 14).

Parameter accounting of the released graph (exact, from the notes; checked in
``tests/test_models_abanet.py`` with one train-mode backward pass through all eight outputs):

==============================================  ============  ==========
part                                              parameters   gradient
==============================================  ============  ==========
BASNet (our ``BASNet``)                           87,060,360   see below
3 used gates, F_int = F_g: 396,803 + 100,099 +       522,377   yes
25,475
2 unused gates: att1 248 + att2 885                    1,133   no
total                                             87,583,870
----------------------------------------------  ------------  ----------
conv3d_1 1,179,904 + conv2d_1 295,040 +            1,548,736   no
conv1d_1 73,792 (first convs bypassed by the
gated skip)
conv4d_2 1,179,904 + bn4d_2 512, conv3d_2          1,549,632   no
295,040 + bn3d_2 256, conv2d_2 73,792 + bn2d_2
128 (last conv + BN of stages 4d-2d)
outconv2 (64-ch head)                                    577   no
att1 + att2 (built, never called)                      1,133   no
total without gradient                             3,100,078
used (total - without gradient)                   84,483,792
==============================================  ============  ==========

Every other layer's count is 0 (mod 64), or 1 / 2 for the 1-channel convs and BatchNorm2d(1),
since all its other widths are multiples of 64; the unused gates' odd widths (14, 28, 7) supply
the remaining 1,133 = 45 (mod 64) parameters, which no graph built from those layers can give.

Outputs: the released code returns sigmoid probabilities; to fit the project interface this
class returns LOGITS unless ``return_probabilities=True``. Train mode (or ``return_all=True``)
gives eight outputs (refined, d1..d6, bridge), eval mode the refined map.
"""
from __future__ import annotations

import torch
from torch import nn

from abanet_lib.models.abanet import OUTPUT_NAMES
from abanet_lib.models.base import SegmentationModel
from abanet_lib.models.blocks import (DECODER_CHANNELS, AttentionGate, Bridge, Encoder, RefinementModule, SideHead,
                                      build_decoder, check_input, crop_attention, crop_to, pad_to_multiple,
                                      upsample_like)
from abanet_lib.models.pretrained import load_resnet34_imagenet

#: Gate name -> (encoder stage of the gated skip, paper stage, decoder stage giving g).
OFFICIAL_GATES: dict[str, tuple[int, int, int]] = {"gate3": (3, 4, 4), "gate2": (2, 5, 3),
                                                    "gate1": (1, 6, 2)}

#: Gates the released graph builds but never calls: name -> (F_g, F_l, F_int).
UNUSED_GATES: dict[str, tuple[int, int, int]] = {"att1": (14, 14, 7), "att2": (28, 28, 14)}

#: Parameters that the released graph builds but never uses (module name prefixes).
UNUSED_PARAMETER_PREFIXES: tuple[str, ...] = (
    "decoder.stage3d.conv1.0.", "decoder.stage2d.conv1.0.", "decoder.stage1d.conv1.0.",
    "decoder.stage4d.conv2.", "decoder.stage3d.conv2.", "decoder.stage2d.conv2.",
    "side_heads.outconv2.", "unused_gates.",
)


class ABANetOfficial(SegmentationModel):
    """The released-code graph of ABANet (see module docstring).

    Args:
        pretrained: load torchvision ResNet-34 ImageNet weights into encoder stages 1-4.
        return_probabilities: apply a sigmoid to every output, as the released code does
            (breaks the logits contract; use only to mimic the release).
    """

    def __init__(self, pretrained: bool = False, return_probabilities: bool = False) -> None:
        super().__init__()
        self.return_probabilities = return_probabilities
        self.encoder = Encoder()
        self.bridge = Bridge()
        self.decoder = build_decoder()
        self.gates = nn.ModuleDict()
        for name, (k, _paper, g_stage) in OFFICIAL_GATES.items():
            g_channels = DECODER_CHANNELS[g_stage][2]  # middle-conv output
            skip_channels = DECODER_CHANNELS[k][1]      # = channels of h_k
            self.gates[name] = AttentionGate(g_channels, skip_channels, g_channels)
        # BASNet's seven heads under BASNet's names (outconv2 stays unused).
        self.side_heads = nn.ModuleDict({
            "outconvb": SideHead(512), "outconv6": SideHead(512), "outconv5": SideHead(512),
            "outconv4": SideHead(256), "outconv3": SideHead(128), "outconv2": SideHead(64),
            "outconv1": SideHead(64),
        })
        self.refinement = RefinementModule()
        # Built but never called in forward: they only add parameters, as in the release.
        # Built last, so that a seeded build initialises every used layer as before.
        self.unused_gates = nn.ModuleDict({
            name: AttentionGate(f_g, f_l, f_int) for name, (f_g, f_l, f_int) in UNUSED_GATES.items()
        })
        self.last_attention: dict[int, torch.Tensor] = {}
        if pretrained:
            load_resnet34_imagenet(self.encoder)

    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES

    def unused_parameter_names(self) -> list[str]:
        """Names of the parameters the released graph never uses."""
        return [n for n, _ in self.named_parameters() if n.startswith(UNUSED_PARAMETER_PREFIXES)]

    def forward(self, x: torch.Tensor, return_all: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """(N, 3, H, W) -> refined logits (N, 1, H, W), or all eight outputs.

        Inputs whose sides are not multiples of 32 are reflect-padded and cropped back.
        """
        check_input(x, type(self).__name__)
        x, size = pad_to_multiple(x)
        full = x.shape[-2:]
        h = self.encoder(x)
        bridge = self.bridge(h[5])
        dec, heads = self.decoder, self.side_heads
        hd6 = dec["stage6d"](torch.cat((bridge, h[5]), 1))
        hd5 = dec["stage5d"](torch.cat((upsample_like(hd6, h[4]), h[4]), 1))
        s4 = dec["stage4d"]
        mid = s4.conv_m(s4.conv1(torch.cat((upsample_like(hd5, h[3]), h[3]), 1)))
        mids = {4: mid}
        attention: dict[int, torch.Tensor] = {}
        for name, (k, paper_stage, _g_stage) in OFFICIAL_GATES.items():
            gated, psi = self.gates[name](mid, h[k - 1])
            attention[paper_stage] = psi
            stage = dec[f"stage{k}d"]
            _skipped_conv, bn, relu = stage.conv1
            hx = relu(bn(gated))
            if k > 1:
                mid = stage.conv_m(hx)
                mids[k] = mid
            else:
                hd1 = stage.conv2(stage.conv_m(hx))
        d1 = heads["outconv1"](hd1, full)
        outputs = [self.refinement(d1), d1]
        want_all = self.training or return_all
        if want_all:
            outputs += [
                heads["outconv3"](mids[2], full),
                heads["outconv4"](mids[3], full),
                heads["outconv5"](mids[4], full),  # the reused head
                heads["outconv5"](hd5, full),
                heads["outconv6"](hd6, full),
                heads["outconvb"](bridge, full),
            ]
        self.last_attention = crop_attention(attention, size, full)
        outputs = [crop_to(o, size) for o in outputs]
        if self.return_probabilities:
            outputs = [torch.sigmoid(o) for o in outputs]
        return tuple(outputs) if want_all else outputs[0]
