"""ESRGAN + the LDL artifact term (Liang et al., "Details or Artifacts", CVPR 2022), the paper's synthetic setup."""
from collections import OrderedDict
from typing import Callable, Optional

import torch
from basicsr.losses.loss_util import get_refined_artifact_map
from basicsr.models.esrgan_model import ESRGANModel
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor, nn

from aesop_basicsr.metrics.lower_is_better import fill_in_better
from aesop_basicsr.utils.options import check_autoencoder_scales
from aesop_basicsr.utils.registry import register

LDL_WINDOW = 7  # local window of the artifact map, as in LDL and BasicSR's get_refined_artifact_map callers


def ldl_artifact_loss(criterion: nn.Module, output: Tensor, gt: Tensor, output_ema: Tensor) -> Tensor:
    """``criterion(M * output, M * gt)`` with the refined artifact map ``M`` of LDL (Liang et al., CVPR 2022).

    ``M`` is large where the residual ``|gt - output|`` varies strongly in a 7x7 window (artifacts,
    not smooth error), and 0 where the EMA generator's output is further from ``gt`` than
    ``output`` is. As in LDL, ``M`` is not detached. ``output_ema`` needs no gradient.
    """
    artifact_map = get_refined_artifact_map(gt, output, output_ema, LDL_WINDOW)
    return criterion(artifact_map * output, artifact_map * gt)


class PixelAndArtifactLoss(nn.Module):
    """The model's fidelity criterion: ``pixel(output, gt)`` (if any) plus the LDL artifact term.

    Installed as ``cri_pix`` so that ESRGANModel's own generator step adds the LDL term to its
    total under exactly its own conditions (``net_d_iters``, ``net_d_init_iters``). It keeps the two
    parts of its last call so the model can log them separately.
    """

    def __init__(self, pixel: Optional[nn.Module], ldl: nn.Module, ema_output: Callable[[], Tensor]) -> None:
        super().__init__()
        self.pixel = pixel
        self.ldl = ldl
        self.ema_output = ema_output
        self.last_parts: 'OrderedDict[str, Tensor]' = OrderedDict()

    def forward(self, output: Tensor, gt: Tensor) -> Tensor:
        parts = OrderedDict()
        if self.pixel is not None:
            parts['l_g_pix'] = self.pixel(output, gt)
        parts['l_g_ldl'] = ldl_artifact_loss(self.ldl, output, gt, self.ema_output())
        self.last_parts = parts
        return sum(parts.values())


def contiguous_inputs(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the module gets its tensor inputs in contiguous (NCHW) memory.

    BasicSR's VGGStyleDiscriminator flattens its features with ``.view``, which fails on channels-last
    tensors. Generators whose patch un-embedding is a transpose (BasicSR's SwinIR, DRCT) return such a
    tensor on current PyTorch (convolutions keep the layout they are given), so the discriminator would fail
    on the SR image in the first step.
    """
    return tuple(a.contiguous() if isinstance(a, Tensor) else a for a in args)


@register(MODEL_REGISTRY)
class ESRGANLDLModel(ESRGANModel):
    """BasicSR's ESRGANModel plus LDL's artifact loss ``train:ldl_opt`` (any BasicSR loss), logged as ``l_g_ldl``.

    ``ldl_opt`` is applied to ``M * output`` vs ``M * gt`` with ``M =
    get_refined_artifact_map(gt, output, output_ema, 7)``, where ``output_ema`` is the EMA
    generator's output (so ``train:ema_decay`` must be > 0). Without ``ldl_opt`` this is ESRGANModel.

    Design: ESRGANModel sums its generator terms inside one ``optimize_parameters`` with no hook
    for another term. Rather than copying that method to add five lines, the pixel criterion
    ``cri_pix`` is wrapped in :class:`PixelAndArtifactLoss`, whose result ESRGANModel adds to its
    total; afterwards the logged ``l_g_pix`` is split back into ``l_g_pix`` and ``l_g_ldl``. All
    else (pixel/AESOP, perceptual, relativistic GAN, discriminator step, EMA update, saving and
    resuming) is ESRGANModel's own code. BasicSR's SRGANModel already builds ``cri_ldl`` from
    ``ldl_opt`` but never uses it; this model does. The discriminator gets its input contiguous
    (:func:`contiguous_inputs`), so SwinIR-type generators train with BasicSR's VGGStyleDiscriminator.
    """

    def __init__(self, opt: dict) -> None:
        check_autoencoder_scales(opt)  # before anything is built: an AESOPLoss auto-encoder of another scale
        fill_in_better(opt)  # LPIPS/DISTS in val.metrics: Best is the lowest value
        super().__init__(opt)

    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        if train_opt.get('ldl_opt') and not train_opt.get('ema_decay', 0) > 0:
            raise ValueError(f"train:ldl_opt needs the EMA generator's output for LDL's artifact map, but "
                             f"train:ema_decay is {train_opt.get('ema_decay')!r}; set train:ema_decay > 0 "
                             f'(the paper uses 0.999) or remove train:ldl_opt.')
        super().init_training_settings()  # builds cri_pix, cri_ldl (from ldl_opt), net_g_ema, net_d, ...
        self.get_bare_model(self.net_d).register_forward_pre_hook(contiguous_inputs)
        if self.cri_ldl is not None:
            self.cri_pix = PixelAndArtifactLoss(self.cri_pix, self.cri_ldl, self._ema_output)

    def _ema_output(self) -> Tensor:
        """The EMA generator's output for the current batch, without gradient."""
        with torch.no_grad():
            return self.net_g_ema(self.lq)

    def optimize_parameters(self, current_iter: int) -> None:
        fidelity = self.cri_pix if isinstance(self.cri_pix, PixelAndArtifactLoss) else None
        if fidelity is not None:
            fidelity.last_parts = OrderedDict()
        super().optimize_parameters(current_iter)
        if fidelity is not None and fidelity.last_parts:
            # ESRGANModel logged pixel + LDL as 'l_g_pix': log the two parts instead, in its place
            parts = self.reduce_loss_dict(OrderedDict((k, v.detach()) for k, v in fidelity.last_parts.items()))
            log = OrderedDict()
            for key, value in self.log_dict.items():
                if key == 'l_g_pix':
                    log.update(parts)
                else:
                    log[key] = value
            self.log_dict = log
            fidelity.last_parts = OrderedDict()
