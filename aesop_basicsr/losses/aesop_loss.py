"""AESOP: Auto-Encoded Supervision for Optimal Penalization (Lee et al., CVPR 2025, Eq. 8)."""
import os
from typing import Any, Callable, Dict, Mapping, Optional, Union

import torch
from basicsr.archs import build_network
from basicsr.losses.basic_loss import charbonnier_loss, l1_loss, mse_loss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from aesop_basicsr.losses.autoencoder_passes import AutoEncoderPasses
from aesop_basicsr.losses.loss_modes import LossModes
from aesop_basicsr.utils.checkpoint import load_pretrained
from aesop_basicsr.utils.cli import DataError
from aesop_basicsr.utils.registry import register

CRITERIA: Dict[str, Callable[..., Tensor]] = {'l1': l1_loss, 'mse': mse_loss, 'charbonnier': charbonnier_loss}
REDUCTIONS = ('mean', 'sum', 'none')
SHAPE_HINT = 'Check the auto-encoder options num_block, num_feat, scale and the decoder against the file.'


@register(LOSS_REGISTRY)
class AESOPLoss(nn.Module):
    """``loss_weight * criterion(psi(pred), psi(target))`` with a frozen auto-encoder psi (Eq. 8).

    A drop-in for BasicSR's pixel loss (``pixel_opt``): it penalises only the error that
    survives psi, i.e. the part determined by the LR input (the fidelity bias), not the
    high-frequency perceptual variance.

    Args:
        autoencoder: An ``AESOPAutoEncoder`` option dict, as in a ``network_*`` block.
        loss_weight: Weight of this loss.
        criterion: ``l1`` (the paper), ``mse`` or ``charbonnier``.
        reduction: ``mean``, ``sum`` or ``none``.
        pretrain_network_ae: Path of the auto-encoder weights (``.pth`` or ``.safetensors``).
        param_key_ae: Key of the weights in the file (``params_ema``, ``params``; ``~`` for a bare state dict).
        strict_load_ae: Require every tensor of the network to be in the file and vice versa.
        eps: Charbonnier epsilon.
        precision: ``fp32`` (default; true fp32, TF32 kept out on CUDA) or ``bf16`` (the difference
            path, within 1% of float64; RRDBNet decoders, others fall back to fp32). bf16 runs only where
            the device computes it natively (CPUs with AVX512-BF16/AMX, CUDA compute capability >= 8.0;
            :mod:`aesop_basicsr.utils.device_support`); elsewhere fp32, with one log line.
        channels_last: Run the auto-encoder on NHWC tensors (default; same values, faster).
        compile: ``torch.compile`` the auto-encoder passes.
        checkpoint: Recompute the pred pass block by block in backward (less memory, one more forward).
        winograd: On CPU, run the RRDB blocks' 3x3 convolutions by Winograd F(4x4, 3x3) in fp32
            (4x fewer multiplications, loss within ~1e-5 of float64): ``true``, ``false``, or ``auto``
            (default: where PyTorch runs one thread, where it is the faster). Ignored on CUDA.
    """

    def __init__(self,
                 autoencoder: Mapping[str, Any],
                 loss_weight: float = 1.0,
                 criterion: str = 'l1',
                 reduction: str = 'mean',
                 pretrain_network_ae: Optional[str] = None,
                 param_key_ae: Optional[str] = 'params_ema',
                 strict_load_ae: bool = True,
                 eps: float = 1e-12,
                 precision: str = 'fp32',
                 channels_last: bool = True,
                 compile: bool = False,
                 checkpoint: bool = False,
                 winograd: Union[bool, str] = 'auto') -> None:
        super().__init__()
        modes = LossModes(precision=precision, channels_last=channels_last, compile=compile, checkpoint=checkpoint,
                          winograd=winograd)
        if criterion not in CRITERIA:
            raise ValueError(f'AESOPLoss: criterion={criterion!r} is unknown; choose one of {", ".join(CRITERIA)}.')
        if reduction not in REDUCTIONS:
            raise ValueError(f'AESOPLoss: reduction={reduction!r} is unknown; choose one of {", ".join(REDUCTIONS)}.')
        if not isinstance(autoencoder, Mapping) or 'type' not in autoencoder:
            raise ValueError('AESOPLoss: autoencoder must be an option dict with a type, '
                             'e.g. {type: AESOPAutoEncoder, scale: 4}.')
        self.loss_weight = loss_weight
        self.criterion = criterion
        self.reduction = reduction
        self.eps = eps

        self.autoencoder = build_network(dict(autoencoder))
        if pretrain_network_ae is not None:
            ae_file = os.path.expanduser(str(pretrain_network_ae))  # BasicSR expands '~' only under path:
            load_pretrained(self.autoencoder, ae_file, param_key_ae, strict_load_ae, 'AESOPLoss.pretrain_network_ae',
                            'AESOPLoss.param_key_ae', SHAPE_HINT)
        else:
            get_root_logger().warning('AESOPLoss: no pretrain_network_ae given; the auto-encoder is randomly '
                                      'initialised, which is only useful for tests.')
        self.autoencoder.requires_grad_(False)
        self.autoencoder.eval()
        self.passes = AutoEncoderPasses(self.autoencoder, modes, get_root_logger())

    def train(self, mode: bool = True) -> 'AESOPLoss':
        """The auto-encoder is frozen: it stays in eval mode whatever mode the loss is put in."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    def _check_inputs(self, pred: Tensor, target: Tensor) -> None:
        if pred.dim() != 4 or target.dim() != 4:
            raise ValueError(f'AESOPLoss: pred and target must be NCHW tensors; got shapes '
                             f'{tuple(pred.shape)} and {tuple(target.shape)}.')
        if pred.shape != target.shape:
            raise ValueError(f'AESOPLoss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape.')
        scale = getattr(self.autoencoder, 'scale', 1)
        if pred.shape[-2] % scale or pred.shape[-1] % scale:
            raise ValueError(f'AESOPLoss: spatial size {tuple(pred.shape[-2:])} is not divisible by the '
                             f'auto-encoder scale {scale}; crop GT patches to a multiple of it.')
        # one reduction (sums accumulate in fp32, so images cannot overflow them); NaN/Inf propagate
        if not torch.isfinite(pred.detach().sum(dtype=torch.float32) + target.sum(dtype=torch.float32)):
            bad = 'target (the GT batch)' if not torch.isfinite(target).all() else 'pred (the network output)'
            raise DataError(f'AESOPLoss: {bad} contains NaN or Inf values; check the training images and the '
                            'data pipeline (or, for pred, a diverged generator / its LQ input).')

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        """Args: pred (N, C, H, W) SR output; target (N, C, H, W) ground truth; weight: element-wise weights."""
        self._check_inputs(pred, target)
        difference = self.passes(target, pred)  # psi(pred) - psi(target)
        extra = {'eps': self.eps} if self.criterion == 'charbonnier' else {}
        return self.loss_weight * CRITERIA[self.criterion](
            difference, torch.zeros_like(difference), weight, reduction=self.reduction, **extra)
