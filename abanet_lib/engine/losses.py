"""Training losses: the paper's hybrid loss (focal + SSIM + IoU) and the released-code variant.

Every loss takes **logits** ``(N, 1, H, W)`` (what every model of the project returns) and a
target ``(N, 1, H, W)`` in {0, 1}, and returns a scalar mean. Losses are computed in float32
with autocast disabled, whatever precision the model ran in (SSIM's variance terms and the
focal ``log`` lose too much in bf16/fp16).

Two variants of the hybrid loss (:class:`HybridLoss`):

``variant="paper"`` (eq. 2-5 of the paper)
    * focal: eq. (3), ``alpha`` weights the positives and ``1 - alpha`` the negatives,
      default ``alpha = 0.3``, ``gamma = 2``; computed from logits with ``logsigmoid``.
    * SSIM: ``1 - SSIM(sigmoid(logits), target)``, 11x11 Gaussian window (sigma 1.5),
      C1 = 0.01^2, C2 = 0.03^2 (the paper's "0.012 / 0.032" are typos), data range 1.
      Default ``padding="valid"`` uses :func:`pytorch_msssim.ssim` (valid convolution: the
      SSIM map covers the ``(H-10) x (W-10)`` interior). ``padding="zero"`` is the released
      code's version (zero padding, full ``H x W`` map). Both agree on the interior pixels;
      they differ only in the 5-pixel border that zero padding adds (there the local means
      are pulled towards 0, which changes the border SSIM values and their weight in the mean).
    * IoU: soft IoU per image, ``1 - (sum(p g) + eps) / (sum(p + g - p g) + eps)`` with
      ``eps = 1`` (Laplace smoothing) so an empty target is safe: empty target and empty
      prediction give 0 loss; on 256x256 masks with thousands of positive pixels ``eps``
      changes the value by < 1e-3.

``variant="official"`` (the released code, see ``shared/notes/official-code.md``)
    The released network ends in a sigmoid; our models return logits, so the model output
    there is ``p = sigmoid(logits)`` and every component sees ``p``:

    * focal: applies a *second* sigmoid, ``q = sigmoid(p)`` (so q lies in [0.5, 0.73]),
      clamps q to [1e-6, 1 - 1e-6]; ``alpha = 0.25`` weights the negatives only
      (positives weight 1); the modulating factors ``(1-q)^gamma``, ``q^gamma`` are detached;
      pixels whose label is neither exactly 0 nor 1 get no loss; mean over all pixels.
    * SSIM: ``1 - SSIM(p, target)`` with zero padding.
    * IoU: ``1 - sum(p g) / (sum(g) + sum(p) - sum(p g))`` per image, **no epsilon**: 0/0 is
      NaN when the target is empty and the prediction is exactly 0. (The notes report NaN on
      an empty ground truth; with strictly positive sigmoid outputs the ratio is 0 and the loss
      1, NaN appears once ``p`` underflows.) ``official_iou_eps`` (default 0) can make it safe.
    * BCE on ``p``: computed (for the log only) but not added to the total, as released.

Per-component values of the last call are kept on :attr:`HybridLoss.last_components`.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: SSIM constants (data range 1): C1 = (0.01 L)^2, C2 = (0.03 L)^2.
SSIM_K = (0.01, 0.03)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
#: Smoothing of the paper-variant soft IoU loss (see module docstring).
IOU_EPS = 1.0
#: Constants of the released focal loss.
OFFICIAL_ALPHA = 0.25
OFFICIAL_GAMMA = 2.0
OFFICIAL_CLAMP = 1e-6

COMPONENTS = ("focal", "ssim", "iou", "bce")
VARIANTS = ("paper", "official")


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def _check_pair(logits: Tensor, target: Tensor, where: str) -> tuple[Tensor, Tensor]:
    """Validate shapes and return float32 copies (autocast-proof)."""
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{where}: expected torch tensors, got {type(logits).__name__} and {type(target).__name__}")
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"{where}: expected logits of shape (N, 1, H, W), got {tuple(logits.shape)}")
    if target.shape != logits.shape:
        raise ValueError(
            f"{where}: target shape {tuple(target.shape)} does not match output shape {tuple(logits.shape)}; "
            "side outputs must be upsampled to the mask size"
        )
    return logits.float(), target.to(device=logits.device, dtype=torch.float32)


def _float32(t: Tensor):
    """Context: autocast off for the device of ``t`` (losses always run in float32). A plain
    ``torch.autocast`` (not a wrapper class), so torch.compile traces through it: no graph break."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, device=None) -> Tensor:
    """Normalised 2-D Gaussian window, shape (1, 1, size, size), float32."""
    coords = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


# ---------------------------------------------------------------------------------------
# Paper losses (logits in)
# ---------------------------------------------------------------------------------------
def focal_loss(logits: Tensor, target: Tensor, alpha: float = 0.3, gamma: float = 2.0) -> Tensor:
    """Binary focal loss, eq. (3) of the paper, mean over pixels.

    ``-alpha (1-p)^gamma log p`` on positives, ``-(1-alpha) p^gamma log(1-p)`` on negatives,
    with ``p = sigmoid(logits)``; ``log p`` and ``log(1-p)`` come from ``logsigmoid`` so large
    logits stay finite. Soft targets interpolate the two terms linearly.

    Args:
        logits: (N, 1, H, W) raw scores.
        target: (N, 1, H, W) in [0, 1].
        alpha: weight of the positive term (the negatives get ``1 - alpha``).
        gamma: focusing exponent (0 gives alpha-weighted BCE).

    Returns:
        Scalar float32 tensor.
    """
    logits, target = _check_pair(logits, target, "focal_loss")
    with _float32(logits):
        log_p = F.logsigmoid(logits)
        log_not_p = F.logsigmoid(-logits)
        p = torch.sigmoid(logits)
        pos = -alpha * (1 - p).pow(gamma) * log_p
        neg = -(1 - alpha) * p.pow(gamma) * log_not_p
        return (target * pos + (1 - target) * neg).mean()


def bce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy from logits, mean over pixels. Shapes (N, 1, H, W)."""
    logits, target = _check_pair(logits, target, "bce_loss")
    with _float32(logits):
        return F.binary_cross_entropy_with_logits(logits, target)


def ssim_map(prob: Tensor, target: Tensor, padding: str = "zero") -> Tensor:
    """SSIM map of two (N, 1, H, W) maps in [0, 1], hand-written with conv2d.

    Args:
        prob: (N, 1, H, W) probabilities.
        target: (N, 1, H, W) targets.
        padding: ``"zero"`` (released code: output (N, 1, H, W)) or ``"valid"``
            (pytorch-msssim: output (N, 1, H-10, W-10)).
    """
    if padding not in ("zero", "valid"):
        raise ValueError(f"ssim padding must be 'zero' or 'valid', got {padding!r}")
    win = gaussian_window(device=prob.device).to(prob.dtype)
    pad = SSIM_WINDOW // 2 if padding == "zero" else 0
    c1, c2 = SSIM_K[0] ** 2, SSIM_K[1] ** 2

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, win, padding=pad)

    mu_x, mu_y = blur(prob), blur(target)
    sxx = blur(prob * prob) - mu_x * mu_x
    syy = blur(target * target) - mu_y * mu_y
    sxy = blur(prob * target) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def ssim_of_probs(prob: Tensor, target: Tensor, padding: str = "valid") -> Tensor:
    """Per-image mean SSIM, shape (N,), of probability maps (N, 1, H, W).

    ``"valid"`` calls :func:`pytorch_msssim.ssim` (needs H, W >= 11); ``"zero"`` uses
    :func:`ssim_map` with zero padding.
    """
    if padding == "valid":
        if min(prob.shape[-2:]) < SSIM_WINDOW:
            raise ValueError(f"valid SSIM needs maps of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(prob.shape)}")
        from pytorch_msssim import ssim

        return ssim(prob, target, data_range=1.0, size_average=False, win_size=SSIM_WINDOW,
                    win_sigma=SSIM_SIGMA, K=SSIM_K)
    return ssim_map(prob, target, padding).flatten(1).mean(1)


def ssim_loss(logits: Tensor, target: Tensor, padding: str = "valid") -> Tensor:
    """``1 - SSIM(sigmoid(logits), target)``, mean over images (see module docstring).

    Args:
        logits: (N, 1, H, W).
        target: (N, 1, H, W) in [0, 1].
        padding: ``"valid"`` (pytorch-msssim) or ``"zero"`` (released code).
    """
    logits, target = _check_pair(logits, target, "ssim_loss")
    with _float32(logits):
        return 1 - ssim_of_probs(torch.sigmoid(logits), target, padding).mean()


def soft_iou(prob: Tensor, target: Tensor, eps: float = IOU_EPS) -> Tensor:
    """Per-image soft IoU ``(sum(p g) + eps) / (sum(p + g - p g) + eps)``, shape (N,)."""
    inter = (prob * target).flatten(1).sum(1)
    union = (prob + target - prob * target).flatten(1).sum(1)
    return (inter + eps) / (union + eps)


def iou_loss(logits: Tensor, target: Tensor, eps: float = IOU_EPS) -> Tensor:
    """Soft IoU loss, eq. (5), per image then averaged; safe on empty masks.

    Args:
        logits: (N, 1, H, W).
        target: (N, 1, H, W) in [0, 1].
        eps: smoothing added to numerator and denominator.
    """
    logits, target = _check_pair(logits, target, "iou_loss")
    with _float32(logits):
        return (1 - soft_iou(torch.sigmoid(logits), target, eps)).mean()


# ---------------------------------------------------------------------------------------
# Released-code losses (probabilities in)
# ---------------------------------------------------------------------------------------
def official_focal_loss(prob: Tensor, target: Tensor, alpha: float = OFFICIAL_ALPHA,
                        gamma: float = OFFICIAL_GAMMA) -> Tensor:
    """The released focal loss, fed with probabilities ``p`` (N, 1, H, W).

    ``q = clamp(sigmoid(p), 1e-6, 1-1e-6)``; positives (label == 1): ``-(1-q)^g log q``;
    negatives (label == 0): ``-alpha q^g log(1 - q)`` (``logsigmoid(-p)``); modulating
    factors detached; other labels contribute 0; mean over all pixels.
    """
    q = torch.sigmoid(prob).clamp(OFFICIAL_CLAMP, 1 - OFFICIAL_CLAMP)
    pos_mask = (target == 1).float()
    neg_mask = (target == 0).float()
    pos_w = (pos_mask * (1 - q).pow(gamma)).detach()
    neg_w = (neg_mask * q.pow(gamma)).detach()
    loss = -pos_w * torch.log(q) - alpha * neg_w * F.logsigmoid(-prob)
    return loss.mean()


def official_iou_loss(prob: Tensor, target: Tensor, eps: float = 0.0) -> Tensor:
    """The released IoU loss on probabilities, mean over images; ``eps=0`` as released."""
    inter = (prob * target).flatten(1).sum(1)
    union = target.flatten(1).sum(1) + prob.flatten(1).sum(1) - inter
    return (1 - (inter + eps) / (union + eps)).mean()


# ---------------------------------------------------------------------------------------
# Hybrid loss
# ---------------------------------------------------------------------------------------
class HybridLoss(nn.Module):
    """Sum over side outputs of the sum of the chosen loss components (eq. 1-2).

    Table 9 rows: ``("focal",)``, ``("iou",)``, ``("focal", "iou")``,
    ``("focal", "ssim", "iou")``; Figure 7: ``alpha`` in {0.3, 0.5, 0.75, 0.9}.

    Args:
        components: any of ``"focal"``, ``"ssim"``, ``"iou"``, ``"bce"``.
        alpha: focal alpha; ``None`` = the variant's default (paper 0.3 on positives,
            official 0.25 on negatives).
        gamma: focal gamma; ``None`` = 2.
        variant: ``"paper"`` or ``"official"`` (see module docstring).
        weights: optional ``{component: weight}`` (default 1 each).
        ssim_padding: ``None`` = ``"valid"`` for paper, ``"zero"`` for official.
        official_iou_eps: epsilon of the official IoU (0 as released: NaN possible).

    Call:
        ``loss(outputs, target)`` with ``outputs`` a (N, 1, H, W) logits tensor or a tuple /
        list of them and ``target`` (N, 1, H, W) -> scalar float32 tensor.
        :attr:`last_components` then holds ``{component: value summed over outputs,
        "total": value}`` as floats (plus ``"bce_unused"`` for the official variant).
    """

    def __init__(
        self,
        components: Sequence[str] = ("focal", "ssim", "iou"),
        alpha: float | None = None,
        gamma: float | None = None,
        variant: str = "paper",
        weights: Mapping[str, float] | None = None,
        ssim_padding: str | None = None,
        official_iou_eps: float = 0.0,
    ):
        super().__init__()
        if isinstance(components, str):
            components = (components,)
        components = tuple(components)
        if not components:
            raise ValueError("HybridLoss: components must not be empty")
        unknown = [c for c in components if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"HybridLoss: unknown component(s) {unknown}; expected some of {COMPONENTS}")
        if variant not in VARIANTS:
            raise ValueError(f"HybridLoss: unknown variant {variant!r}; expected one of {VARIANTS}")
        weights = dict(weights or {})
        extra = set(weights) - set(components)
        if extra:
            raise ValueError(f"HybridLoss: weights given for components not in use: {sorted(extra)}")
        self.components = components
        self.variant = variant
        self.alpha = float(alpha) if alpha is not None else (0.3 if variant == "paper" else OFFICIAL_ALPHA)
        self.gamma = float(gamma) if gamma is not None else 2.0
        self.weights = {c: float(weights.get(c, 1.0)) for c in components}
        self.ssim_padding = ssim_padding or ("valid" if variant == "paper" else "zero")
        self.official_iou_eps = float(official_iou_eps)
        self._last: dict[str, Tensor] = {}

    def extra_repr(self) -> str:
        return (f"components={self.components}, variant={self.variant!r}, alpha={self.alpha}, "
                f"gamma={self.gamma}, ssim_padding={self.ssim_padding!r}")

    @property
    def last_components(self) -> dict[str, float]:
        """Per-component values (summed over outputs) and ``"total"`` of the last call."""
        return {k: float(v) for k, v in self._last.items()}

    def _one_output(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        values: dict[str, Tensor] = {}
        if self.variant == "paper":
            prob = torch.sigmoid(logits)
            for c in self.components:
                if c == "focal":
                    values[c] = focal_loss(logits, target, self.alpha, self.gamma)
                elif c == "ssim":
                    values[c] = 1 - ssim_of_probs(prob, target, self.ssim_padding).mean()
                elif c == "iou":
                    values[c] = (1 - soft_iou(prob, target)).mean()
                else:
                    values[c] = bce_loss(logits, target)
            return values
        prob = torch.sigmoid(logits)  # the released network's (sigmoid) output
        for c in self.components:
            if c == "focal":
                values[c] = official_focal_loss(prob, target, self.alpha, self.gamma)
            elif c == "ssim":
                values[c] = 1 - ssim_of_probs(prob, target, self.ssim_padding).mean()
            elif c == "iou":
                values[c] = official_iou_loss(prob, target, self.official_iou_eps)
            else:
                values[c] = F.binary_cross_entropy(prob, target)
        if "bce" not in self.components:
            with torch.no_grad():  # computed but unused, as released; logged only
                values["bce_unused"] = F.binary_cross_entropy(prob, target.clamp(0, 1))
        return values

    def forward(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        outs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        if not outs:
            raise ValueError("HybridLoss: got an empty sequence of outputs")
        sums: dict[str, Tensor] = {}
        total = None
        for i, out in enumerate(outs):
            logits, tgt = _check_pair(out, target, f"HybridLoss output {i}")
            with _float32(logits):
                values = self._one_output(logits, tgt)
            for name, value in values.items():
                sums[name] = sums[name] + value if name in sums else value
                if name in self.weights:
                    term = self.weights[name] * value
                    total = term if total is None else total + term
        self._last = {k: v.detach() for k, v in sums.items()}
        self._last["total"] = total.detach()
        return total


def build_loss(cfg) -> HybridLoss:
    """The loss of a run: ``HybridLoss(cfg.loss, cfg.focal_alpha, cfg.focal_gamma, cfg.loss_variant)``.

    For ``loss_variant="official"`` the released constants (alpha 0.25 on negatives, gamma 2)
    are used; ``cfg.focal_alpha``/``focal_gamma`` only apply when changed from their defaults
    (0.3, 2.0), with a warning since the released code had no such setting.
    """
    variant = cfg.loss_variant
    if variant not in VARIANTS:
        raise ValueError(f"RunConfig.loss_variant must be one of {VARIANTS}, got {variant!r}")
    alpha, gamma = float(cfg.focal_alpha), float(cfg.focal_gamma)
    if variant == "official":
        if (alpha, gamma) == (0.3, 2.0):
            alpha, gamma = OFFICIAL_ALPHA, OFFICIAL_GAMMA
        else:
            warnings.warn(f"official loss with non-default focal_alpha={alpha}, focal_gamma={gamma}: "
                          "the released code used alpha 0.25 (negatives), gamma 2", stacklevel=2)
    return HybridLoss(components=tuple(cfg.loss), alpha=alpha, gamma=gamma, variant=variant)
