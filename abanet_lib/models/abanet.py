"""ABANet, paper variant (Rezvani et al., Sections 4.1-4.4, Figures 5-6).

Graph (N = batch, input (N, 3, H, W), H and W multiples of 32; other sizes are reflect-padded
to the next multiple of 32 and the outputs cropped back):

* Encoder (BASNet's): 3x3 conv 64 (stride 1) + BN + ReLU, ResNet-34 layer1..layer4 give
  h1 (64, H), h2 (128, H/2), h3 (256, H/4), h4 (512, H/8); max-pool + three BasicBlocks of 512
  give h5 (512, H/16) and h6 (512, H/32).
* Bridge: three dilated (d=2) 3x3 conv-BN-ReLU of 512 at H/32.
* Decoder stages 6d..1d (BASNet's channel table, ``blocks.DECODER_CHANNELS``): upsample the
  previous decoder output to the skip's size, concatenate it with the encoder skip h_k (gated
  when stage k carries an attention gate), three conv-BN-ReLU.
* Attention gates (Figure 6): g = output of the previous decoder stage (k+1)d, at half the
  resolution of the skip h_k; x = h_k; output x * psi. In this variant the gated skip is
  CONCATENATED with the upsampled decoder features, so the decoder path is kept (the released
  code instead replaces the decoder path by the gated skip, see ``official.py``).
* Side heads: 3x3 conv to one channel on the bridge and on every decoder stage, bilinearly
  upsampled to the input size.
* Refinement: BASNet's residual refinement module on the pre-sigmoid d1 map.

Stage numbering of the paper (Table 6, "attention gate jump connection stages").
The paper counts the six decoder stages from the deepest: "The first two stages [of the
decoder] consist of three convolution layers ... For other stages, the attention gate is
added", so decoder stages 1 and 2 (6d, 5d) never carry a gate and Table 6 only offers stages
3-6. Paper stage s therefore is decoder stage (7 - s)d and gates the skip of encoder stage
7 - s. With this reading the paper's best setting {4, 5, 6} gates h3, h2, h1 (the three finest
skips, at H/4, H/2, H), which is exactly the three gated skips of the released code; {5, 6}
gates the two finest skips; {3, 4, 5, 6} adds the skip h4 of encoder stage 4 (H/8). The table
is :data:`PAPER_STAGE_TO_ENCODER_STAGE`.

Outputs are logits (no sigmoid). Train mode returns a tuple
``(refined, d1, d2, d3, d4, d5, d6, bridge)`` (without ``refined`` when ``refine=False``; then
d1 is the main output), each (N, 1, H, W). Eval mode returns the main output only, unless
``forward(x, return_all=True)``. After each forward, ``last_attention`` maps paper stage ->
psi (N, 1, h_k, w_k) at the resolution of the gated skip (detached).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from abanet_lib.models.base import SegmentationModel
from abanet_lib.models.blocks import (
    DECODER_CHANNELS,
    ENCODER_CHANNELS,
    AttentionGate,
    Bridge,
    Encoder,
    RefinementModule,
    SideHead,
    build_decoder,
    check_input,
    crop_attention,
    crop_to,
    pad_to_multiple,
    upsample_like,
)
from abanet_lib.models.pretrained import load_resnet34_imagenet

#: Paper stage (Table 6 column) -> encoder stage whose skip the gate modulates, which is also
#: the decoder stage ("kd") that consumes it. Paper stages 1 and 2 (decoder stages 6d and 5d)
#: have no gate in the paper ("the first two stages consist of three convolution layers").
PAPER_STAGE_TO_ENCODER_STAGE: dict[int, int] = {3: 4, 4: 3, 5: 2, 6: 1}

#: The paper's best configuration (Table 6).
DEFAULT_ATTENTION_STAGES: tuple[int, ...] = (4, 5, 6)

#: Output names in the order the model returns them in train mode.
OUTPUT_NAMES: tuple[str, ...] = ("refined", "d1", "d2", "d3", "d4", "d5", "d6", "bridge")


def validate_attention_stages(stages: Iterable[int]) -> tuple[int, ...]:
    """Sorted, de-duplicated paper stages; raises ValueError for stages without a gate slot."""
    stages = tuple(sorted(set(int(s) for s in stages)))
    bad = [s for s in stages if s not in PAPER_STAGE_TO_ENCODER_STAGE]
    if bad:
        raise ValueError(
            f"attention_stages {bad} invalid: the paper gates only decoder (jump connection) "
            f"stages {sorted(PAPER_STAGE_TO_ENCODER_STAGE)} (Table 6); stages 1-2 have no gate"
        )
    return stages


class ABANet(SegmentationModel):
    """ABANet as described in the paper (gated skips concatenated with the decoder path).

    Args:
        attention_stages: paper stages (subset of {3, 4, 5, 6}) whose skips are gated.
        attention: False disables all gates (the "baseline"/"baseline+refinement" of Table 5;
            with ``refine=True`` this is BASNet's graph).
        refine: use the residual refinement module; False makes d1 the main output.
        pretrained: load torchvision's ResNet-34 ImageNet weights into encoder stages 1-4
            (from the torch hub cache; see ``pretrained.load_resnet34_imagenet``).
        deep_supervision: return all side outputs in train mode (else the main output only,
            and the side heads that would be unused are not built).
    """

    def __init__(
        self,
        attention_stages: Iterable[int] = DEFAULT_ATTENTION_STAGES,
        attention: bool = True,
        refine: bool = True,
        pretrained: bool = False,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        self.attention_stages = validate_attention_stages(attention_stages) if attention else ()
        self.refine = refine
        self.deep_supervision = deep_supervision
        self.encoder = Encoder()
        self.bridge = Bridge()
        self.decoder = build_decoder()
        # Gate of paper stage s sits on encoder skip k; g is decoder stage (k+1)d's output.
        self.gates = nn.ModuleDict()
        for s in self.attention_stages:
            k = PAPER_STAGE_TO_ENCODER_STAGE[s]
            skip = ENCODER_CHANNELS[k]
            self.gates[str(s)] = AttentionGate(DECODER_CHANNELS[k + 1][3], skip, skip // 2)
        head_stages = range(1, 7) if deep_supervision else (1,)
        self.side_heads = nn.ModuleDict(
            {f"d{k}": SideHead(DECODER_CHANNELS[k][3]) for k in head_stages}
        )
        self.bridge_head = SideHead(512) if deep_supervision else None
        self.refinement = RefinementModule() if refine else None
        self.last_attention: dict[int, torch.Tensor] = {}
        if pretrained:
            load_resnet34_imagenet(self.encoder)

    # ------------------------------------------------------------------ helpers
    @property
    def gated_encoder_stages(self) -> dict[int, int]:
        """Encoder stage -> paper stage, for the gated skips."""
        return {PAPER_STAGE_TO_ENCODER_STAGE[s]: s for s in self.attention_stages}

    def output_names(self) -> tuple[str, ...]:
        """Names of the train-mode outputs, in order."""
        if not self.deep_supervision:
            return (OUTPUT_NAMES[0] if self.refine else "d1",)
        return OUTPUT_NAMES if self.refine else OUTPUT_NAMES[1:]

    def _decoder_stage(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return self.decoder[f"stage{k}d"](x)

    def _decode(self, feats: list[torch.Tensor], bridge: torch.Tensor
                ) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """Run decoder stages 6d..1d. Returns [hd1..hd6] and paper stage -> psi."""
        gated = self.gated_encoder_stages
        attention: dict[int, torch.Tensor] = {}
        hd: dict[int, torch.Tensor] = {}
        previous = bridge
        for k in range(6, 0, -1):
            skip = feats[k - 1]
            if k in gated:
                skip, psi = self.gates[str(gated[k])](previous, skip)
                attention[gated[k]] = psi
            hd[k] = self._decoder_stage(k, torch.cat((upsample_like(previous, skip), skip), 1))
            previous = hd[k]
        return [hd[k] for k in range(1, 7)], attention

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, return_all: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits of the main output (eval) or all outputs (train / ``return_all``).

        Args:
            x: (N, 3, H, W) normalised images; H, W not multiples of 32 are reflect-padded
                and the outputs cropped back to (H, W).
            return_all: in eval mode also return the side outputs.

        Returns:
            (N, 1, H, W) logits, or a tuple of them in the order of :meth:`output_names`.
        """
        check_input(x, type(self).__name__)
        x, size = pad_to_multiple(x)
        feats = self.encoder(x)
        bridge = self.bridge(feats[5])
        hd, attention = self._decode(feats, bridge)
        full = x.shape[-2:]
        want_all = (self.training or return_all) and self.deep_supervision
        d1 = self.side_heads["d1"](hd[0], full)
        outputs = [self.refinement(d1)] if self.refine else []
        outputs.append(d1)
        if want_all:
            outputs += [self.side_heads[f"d{k}"](hd[k - 1], full) for k in range(2, 7)]
            outputs.append(self.bridge_head(bridge, full))
        self.last_attention = crop_attention(attention, size, full)
        outputs = [crop_to(o, size) for o in outputs]
        return tuple(outputs) if want_all else outputs[0]

