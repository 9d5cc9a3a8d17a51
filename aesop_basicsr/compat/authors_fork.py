"""The authors' BasicSR fork (github.com/2minkyulee/AESOP-SR) on stock BasicSR: their names, mapped onto ours.

The authors trained and tested AESOP with a modified copy of BasicSR whose option files name classes
and keys stock BasicSR does not know. This module makes those files run unchanged (except for paths)
under ``python -m basicsr.train`` / ``basicsr.test``, ``aesop-train`` and any BasicSR-based train.py.
Every name is a thin mapping onto a component of this package or of BasicSR; nothing here
re-implements what they do:

==================================  ===========================================================================
their name (registry)               runs as
==================================  ===========================================================================
``AEModel`` (model)                 ``AESOPAEModel``: ``pixel_at_LR_opt`` -> ``lr_opt`` (logged ``l_lr``),
                                    ``freeze_decoder: N`` -> ``freeze_decoder_iters`` (frozen while iter <= N;
                                    N >= total_iter: the whole run; N <= 0: never), ``param_key_decoder`` falls
                                    back to ``params`` as their ``load_network`` does
``AesopESRGANArtifactsDisModel``    ``ESRGANLDLModel``: ``aesop_opt`` -> ``pixel_opt`` (logged ``l_g_pix``, theirs
(model)                             ``l_g_aesep``), ``artifacts_opt`` -> ``ldl_opt`` (``l_g_ldl``)
``AesopRealESRGANArtifactsDisModel``  BasicSR's ``RealESRGANModel``: ``aesop_opt`` -> ``pixel_opt`` on the plain GT
(model)                             (``l1_gt_usm: false``, as their model feeds AESOP ``self.gt``),
                                    ``artifacts_opt`` -> ``ldl_opt``
``AutoEncoderLoss`` (loss)          ``AESOPLoss``: ``autoencoder_arch`` -> ``autoencoder``, ``autoencoder_load:
                                    {path, key}`` -> ``pretrain_network_ae``/``param_key_ae`` (strict, as their
                                    ``load_state_dict``), ``criterion: l2`` -> ``mse``
``AutoEncoder_RRDBNet`` (arch)      ``AESOPAutoEncoder`` (x4, 2 encoder RRDBs, width and growth of ``dec_opt``,
                                    decoder ``RRDBNet(**dec_opt)``; ``enc_opt`` is unused, as in theirs)
``VGGStyleDiscriminator128/256``    BasicSR's ``VGGStyleDiscriminator`` with ``input_size`` 128 / 256 (the same
(arch)                              tensors; their 256 uses SyncBatchNorm, this one per-GPU BatchNorm)
``RRDBNet_LEGACY`` (arch)           spandrel's ESRGAN (``in_nc, out_nc, nf, nb, gc``): reads the old ESRGAN
                                    key layout (RRDB_ESRGAN_x4.pth, BSRGAN.pth) as it is
``calculate_{psnr,ssim}_pytorch``   BasicSR's ``calculate_psnr`` / ``calculate_ssim`` on the 8-bit images (theirs
(metric)                            quantise the tensors to 8 bits first: the same values)
``calculate_{lpips,dists}_pytorch``  ``calculate_lpips`` / ``calculate_dists`` (theirs: pyiqa's; equal, see
(metric)                            tests/test_pyiqa_parity.py)
==================================  ===========================================================================

Keys: ``use_flip`` (datasets) -> ``use_hflip``; ``meta_info: ~`` of a ``RealESRGANDataset`` on disk ->
the images of ``dataroot_gt`` (their dataset scans the folder); ``val_start_iter`` -> no validation at
or before that iteration (their train.py); ``use_checkpoint`` of an ``RRDBNet`` generator (their
RRDBNet's gradient checkpointing of the RRDB trunk) -> the same on BasicSR's RRDBNet.

What cannot be honoured fails with one line naming the key (``OptionError``): ``as_loss_map: true``,
``aesop_opt`` beside ``pixel_opt``, ``artifacts_opt`` beside ``ldl_opt``, ``gc`` other than 32 for
RRDBNet_LEGACY, a ``dec_opt`` that is not an RRDBNet, ``freeze_decoder`` beside ``freeze_decoder_iters``.

Registration never breaks a project: each name is a *fallback* (:mod:`aesop_basicsr.utils.fallback_registry`),
found by BasicSR's lookup only while nothing is registered under it, so the fork itself or any project
that registers one of these names later (BasicSR refuses a second registration) gets its own class.
The dataset keys are translated in BasicSR's ``build_dataset`` (wrapped once, here), since datasets are
built before any model sees the options; a dataset without those keys is built exactly as before.
"""
import functools
import inspect
import os
import tempfile
from collections import OrderedDict
from typing import Any, Callable, Dict, Mapping, MutableMapping, Optional

import basicsr.data
import basicsr.test
import basicsr.train
import numpy as np
import torch
from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.utils import get_root_logger, scandir
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.metrics.dists_metric import calculate_dists
from aesop_basicsr.metrics.lower_is_better import fill_in_better, lower_is_better
from aesop_basicsr.metrics.lpips_metric import calculate_lpips
from aesop_basicsr.models.aesop_ae_model import AESOPAEModel
from aesop_basicsr.models.esrgan_ldl_model import ESRGANLDLModel
from aesop_basicsr.utils.checkpoint import basicsr_param_key, read_checkpoint
from aesop_basicsr.utils.cli import OptionError
from aesop_basicsr.utils.fallback_registry import add_fallback, register_fallback

FORK = "the authors' fork (2minkyulee/AESOP-SR)"
ENCODER_BLOCKS = 2  # their AutoEncoder_RRDBNet: make_layer(RRDB, num_basic_block=2, ...)
ENCODER_SCALE = 4  # two PixelUnshuffle(2)
LEGACY_GROWTH = 32  # spandrel's ESRGAN builds its dense blocks with 32 growth channels


def cannot_honour(key: str, why: str) -> OptionError:
    """The one-line error for a key of the fork that this mapping cannot honour."""
    return OptionError(f'{key}: {why} (a key of {FORK}, mapped by aesop_basicsr.compat.authors_fork).')


# ---------------------------------------------------------------- architectures
def autoencoder_options(enc_opt: Optional[Mapping[str, Any]], dec_opt: Mapping[str, Any]) -> Dict[str, Any]:
    """``AESOPAutoEncoder`` keyword arguments for their ``AutoEncoder_RRDBNet(enc_opt, dec_opt)``.

    Their encoder: convs to ``dec_opt.num_feat // 16`` channels, two pixel-unshuffles by 2, 2 RRDBs of
    ``dec_opt.num_feat`` / ``num_grow_ch``, convs back to ``num_in_ch``; the decoder is always
    ``RRDBNet(**dec_opt)``. ``enc_opt`` is never read by their code, so it is not read here either.
    """
    if not isinstance(dec_opt, Mapping) or dec_opt.get('type', 'RRDBNet') != 'RRDBNet':
        raise cannot_honour('AutoEncoder_RRDBNet:dec_opt:type', f'{dict(dec_opt or {}).get("type")!r}: their '
                            'AutoEncoder_RRDBNet always builds an RRDBNet decoder; for another decoder use '
                            'type AESOPAutoEncoder with decoder: {type: ...}')
    decoder = dict(dec_opt, type='RRDBNet')
    defaults = inspect.signature(ARCH_REGISTRY.get('RRDBNet')).parameters

    def value(key: str) -> Any:
        if key in decoder:
            return decoder[key]
        if defaults[key].default is inspect.Parameter.empty:
            raise cannot_honour(f'AutoEncoder_RRDBNet:dec_opt:{key}', 'missing: their encoder is built from it')
        return defaults[key].default

    return dict(scale=ENCODER_SCALE, num_in_ch=value('num_in_ch'), num_feat=value('num_feat'),
                num_grow_ch=value('num_grow_ch'), num_block=ENCODER_BLOCKS, encoder_type='rrdb', decoder=decoder)


@register_fallback(ARCH_REGISTRY)
class AutoEncoder_RRDBNet(AESOPAutoEncoder):  # noqa: N801  (their name)
    """Their ``AutoEncoder_RRDBNet(enc_opt, dec_opt)``: the paper's x4 auto-encoder, as ``AESOPAutoEncoder``.

    The same tensors under the same names (their released files load strictly), ``forward`` = D(E(x)).
    """

    def __init__(self, enc_opt: Optional[Mapping[str, Any]] = None, dec_opt: Optional[Mapping[str, Any]] = None):
        if dec_opt is None:
            raise cannot_honour('AutoEncoder_RRDBNet:dec_opt', 'missing: the RRDBNet decoder options are required')
        super().__init__(**autoencoder_options(enc_opt, dec_opt))


def as_aesop_autoencoder(arch: Mapping[str, Any]) -> Dict[str, Any]:
    """Their ``autoencoder_arch`` as an ``AESOPAutoEncoder`` option dict (other types pass through)."""
    arch = dict(arch)
    if arch.get('type') != 'AutoEncoder_RRDBNet':
        return arch
    return dict(type='AESOPAutoEncoder', **autoencoder_options(arch.get('enc_opt'), arch.get('dec_opt') or {}))


@register_fallback(ARCH_REGISTRY)
class VGGStyleDiscriminator128(VGGStyleDiscriminator):
    """Their ``VGGStyleDiscriminator128(num_in_ch, num_feat)``: BasicSR's with ``input_size=128``, the same tensors."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64):
        super().__init__(num_in_ch, num_feat, input_size=128)


@register_fallback(ARCH_REGISTRY)
class VGGStyleDiscriminator256(VGGStyleDiscriminator):
    """Their ``VGGStyleDiscriminator256(num_in_ch, num_feat)``: BasicSR's with ``input_size=256``, the same tensors.

    Theirs normalises with SyncBatchNorm (statistics over all GPUs of a DDP run); this one, like the
    recipes in options/, with BatchNorm per GPU. On one GPU the two are the same.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64):
        super().__init__(num_in_ch, num_feat, input_size=256)


def legacy_esrgan_class() -> type:
    """``RRDBNet_LEGACY``, built on spandrel's ESRGAN the first time BasicSR looks the name up."""
    from spandrel.architectures.ESRGAN import ESRGAN, ESRGANArch

    class RRDBNet_LEGACY(ESRGAN):  # noqa: N801  (their name)
        """Their ``RRDBNet_LEGACY(in_nc, out_nc, nf, nb, gc)``: ESRGAN x4 in the original repository's layout.

        spandrel's ``ESRGAN`` keeps the oldest key layout (``model.0``, ``model.1.sub.N.RDB1.conv1.0``);
        :meth:`load_state_dict` also takes the later ESRGAN/BSRGAN layout (``conv_first``, ``RRDB_trunk``,
        ``trunk_conv``, ``upconv1``, ``HRconv``; RRDB_ESRGAN_x4.pth, BSRGAN.pth) and BasicSR's, converted by
        spandrel's own ESRGAN loader.
        """

        def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 23, gc: int = 32):
            if gc != LEGACY_GROWTH:
                raise cannot_honour('RRDBNet_LEGACY:gc', f'{gc}: spandrel\'s ESRGAN has {LEGACY_GROWTH} growth '
                                    'channels, as every released ESRGAN')
            super().__init__(in_nc=in_nc, out_nc=out_nc, num_filters=nf, num_blocks=nb, scale=4)

        @staticmethod
        def fold_released_keys(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
            """Any ESRGAN key layout -> spandrel's (the layout of this module's own state dict)."""
            if all(key.startswith('model.') for key in state_dict):
                return OrderedDict(state_dict)
            try:
                return OrderedDict(ESRGANArch().load(dict(state_dict)).model.state_dict())
            except Exception as err:
                raise ValueError(f'RRDBNet_LEGACY: the state dict is not an ESRGAN in a layout spandrel knows '
                                 f'({type(err).__name__}: {err}).') from err

        def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
            return super().load_state_dict(self.fold_released_keys(state_dict), strict=strict, assign=assign)

    RRDBNet_LEGACY.__qualname__ = 'RRDBNet_LEGACY'
    return RRDBNet_LEGACY


add_fallback(ARCH_REGISTRY, 'RRDBNet_LEGACY', legacy_esrgan_class)


class CheckpointedSequential(nn.Sequential):
    """An ``nn.Sequential`` whose forward is recomputed in backward (``torch.utils.checkpoint``) while training."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            return checkpoint(lambda t: nn.Sequential.forward(self, t), x, use_reentrant=False)
        return super().forward(x)


def checkpoint_rrdb_trunk(net: nn.Module) -> None:
    """Their RRDBNet's ``use_checkpoint``: recompute the RRDB trunk (``body``) in backward; the same tensors."""
    net.body.__class__ = CheckpointedSequential


def pop_rrdbnet_checkpointing(opt: MutableMapping[str, Any]) -> bool:
    """Take ``network_g:use_checkpoint`` off an RRDBNet that does not accept it (BasicSR's); return its value."""
    net = opt.get('network_g') or {}
    if net.get('type') != 'RRDBNet' or 'use_checkpoint' not in net:
        return False
    if 'use_checkpoint' in inspect.signature(ARCH_REGISTRY.get('RRDBNet')).parameters:
        return False  # an RRDBNet that has it (a project's own) takes it itself
    return bool(net.pop('use_checkpoint'))


# ---------------------------------------------------------------- loss
@register_fallback(LOSS_REGISTRY)
class AutoEncoderLoss(AESOPLoss):
    """Their ``AutoEncoderLoss``: AESOP (Eq. 8), ``loss_weight * criterion(psi(pred), psi(target))``, as ``AESOPLoss``.

    ``autoencoder_load: {path, key}`` is loaded strictly, as their ``load_state_dict`` does. AESOPLoss's own
    keys (``precision``, ``winograd``, ``checkpoint``, ...) may be added.
    """

    def __init__(self, criterion: str = 'l1', loss_weight: float = 1.0, reduction: str = 'mean',
                 autoencoder_arch: Optional[Mapping[str, Any]] = None,
                 autoencoder_load: Optional[Mapping[str, Any]] = None, as_loss_map: bool = False, **aesop_options):
        if as_loss_map:
            raise cannot_honour('as_loss_map', 'true weights L1 by |psi(SR) - psi(GT)| instead of AESOP, and their '
                                'own code multiplies that map by weight=None and fails; use false (AESOP)')
        if not isinstance(autoencoder_arch, Mapping):
            raise cannot_honour('autoencoder_arch', 'missing: the auto-encoder options are required')
        if not isinstance(autoencoder_load, Mapping) or not autoencoder_load.get('path'):
            raise cannot_honour('autoencoder_load', 'needs {path: <AE checkpoint>, key: <params_ema>}')
        super().__init__(as_aesop_autoencoder(autoencoder_arch), loss_weight=loss_weight,
                         criterion='mse' if criterion == 'l2' else criterion, reduction=reduction,
                         pretrain_network_ae=autoencoder_load['path'], param_key_ae=autoencoder_load.get('key'),
                         strict_load_ae=True, **aesop_options)


# ---------------------------------------------------------------- metrics
@register_fallback(METRIC_REGISTRY)
def calculate_psnr_pytorch(img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool = True,
                           input_order: str = 'HWC', **kwargs) -> float:
    """Their PSNR: BasicSR's ``calculate_psnr`` (their default is the Y channel)."""
    return calculate_psnr(img, img2, crop_border, input_order=input_order, test_y_channel=test_y_channel)


@register_fallback(METRIC_REGISTRY)
def calculate_ssim_pytorch(img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool = False,
                           input_order: str = 'HWC', **kwargs) -> float:
    """Their SSIM: BasicSR's ``calculate_ssim``."""
    return calculate_ssim(img, img2, crop_border, input_order=input_order, test_y_channel=test_y_channel)


@register_fallback(METRIC_REGISTRY)
@lower_is_better
def calculate_lpips_pytorch(img: np.ndarray, img2: np.ndarray, crop_border: int, **kwargs) -> float:
    """Their LPIPS (pyiqa's, AlexNet v0.1): ``calculate_lpips``. Lower is better."""
    return calculate_lpips(img, img2, crop_border, **kwargs)


@register_fallback(METRIC_REGISTRY)
@lower_is_better
def calculate_dists_pytorch(img: np.ndarray, img2: np.ndarray, crop_border: int, **kwargs) -> float:
    """Their DISTS (pyiqa's): ``calculate_dists``. Lower is better."""
    return calculate_dists(img, img2, crop_border, **kwargs)


# ---------------------------------------------------------------- models
def move_key(section: MutableMapping[str, Any], theirs: str, ours: str, where: str) -> None:
    """``section[ours] = section.pop(theirs)``; both given is an error naming them."""
    if theirs not in section:
        return
    if section.get(ours):
        raise cannot_honour(f'{where}:{theirs}', f'given beside {where}:{ours}, which it maps onto; keep one')
    section[ours] = section.pop(theirs)


class ValidationStart:
    """Their ``val:val_start_iter``: during training, validate only after that iteration (theirs: ``iter > start``)."""

    def validation(self, dataloader, current_iter, tb_logger, save_img: bool = False) -> None:
        start = (self.opt.get('val') or {}).get('val_start_iter', 0) or 0
        if self.opt['is_train'] and isinstance(current_iter, int) and current_iter <= start:
            get_root_logger().info(f'Iter {current_iter}: no validation until after iteration {start} '
                                   '(val:val_start_iter).')
            return
        super().validation(dataloader, current_iter, tb_logger, save_img)


def translate_ae_options(opt: MutableMapping[str, Any]) -> None:
    """Their AEModel's training keys as AESOPAEModel's, in place."""
    train = opt.get('train')
    if not opt.get('is_train') or not train:
        return
    move_key(train, 'pixel_at_LR_opt', 'lr_opt', 'train')
    if 'freeze_decoder' in train:
        if 'freeze_decoder_iters' in train:
            raise cannot_honour('train:freeze_decoder', 'given beside train:freeze_decoder_iters; keep one')
        until = train.pop('freeze_decoder')
        if isinstance(until, bool) or not isinstance(until, (int, float)) or int(until) != until:
            raise cannot_honour('train:freeze_decoder', f'{until!r} is not an iteration number')
        until, total = int(until), int(train.get('total_iter', 0))
        # theirs: frozen while current_iter <= until; until <= 0 never freezes
        train['freeze_decoder_iters'] = -1 if 0 < total <= until else max(until, 0)


@register_fallback(MODEL_REGISTRY)
class AEModel(ValidationStart, AESOPAEModel):
    """Their ``AEModel`` (auto-encoder pretraining): ``AESOPAEModel`` with their keys (see the module docstring)."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        translate_ae_options(opt)
        super().__init__(opt)

    def _load_pretrained_decoder(self) -> None:
        """Their ``load_network``: a ``param_key_decoder`` the file lacks falls back to ``params``."""
        path_opt = self.opt['path']
        load_path, key = path_opt.get('pretrain_network_decoder'), path_opt.get('param_key_decoder', 'params')
        if load_path and key and not path_opt.get('resume_state'):
            found = basicsr_param_key(read_checkpoint(load_path, 'path:pretrain_network_decoder'), key)
            if found != key:
                get_root_logger().info(f'{load_path} has no {key}; loading its {found} into the decoder.')
                path_opt['param_key_decoder'] = found
        super()._load_pretrained_decoder()


def translate_gan_options(opt: MutableMapping[str, Any], model: str, aesop_required: bool) -> None:
    """Their AESOP GAN models' training keys (``aesop_opt``, ``artifacts_opt``) as BasicSR's, in place."""
    train = opt.get('train')
    if not opt.get('is_train') or not train:
        return
    if aesop_required and not train.get('aesop_opt'):
        raise cannot_honour('train:aesop_opt', f'missing: {model} trains with AESOP and requires it')
    if not train.get('gan_opt'):
        raise cannot_honour('train:gan_opt', f'missing: {model} is a GAN and requires it')
    move_key(train, 'aesop_opt', 'pixel_opt', 'train')
    move_key(train, 'artifacts_opt', 'ldl_opt', 'train')


class RRDBNetCheckpointing:
    """Their RRDBNet's ``network_g:use_checkpoint`` on BasicSR's RRDBNet (gradient checkpointing of the trunk)."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        use_checkpoint = pop_rrdbnet_checkpointing(opt)
        super().__init__(opt)
        if use_checkpoint:
            checkpoint_rrdb_trunk(self.get_bare_model(self.net_g))
            get_root_logger().info('network_g:use_checkpoint: the RRDB trunk of net_g is recomputed in backward '
                                   '(gradient checkpointing, as in their RRDBNet).')


@register_fallback(MODEL_REGISTRY)
class AesopESRGANArtifactsDisModel(ValidationStart, RRDBNetCheckpointing, ESRGANLDLModel):
    """Their synthetic AESOP model (ESRGAN + LDL + AESOP): ``ESRGANLDLModel`` with their keys."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        translate_gan_options(opt, 'AesopESRGANArtifactsDisModel', aesop_required=False)
        super().__init__(opt)


@register_fallback(MODEL_REGISTRY)
class AesopRealESRGANArtifactsDisModel(ValidationStart, RRDBNetCheckpointing, RealESRGANModel):
    """Their real-world AESOP model: BasicSR's ``RealESRGANModel`` with AESOP as its pixel loss on the plain GT.

    Their model adds AESOP on ``self.gt`` (not the USM-sharpened GT) and an L1 term only if ``pixel_opt`` is
    given (none in their file), so ``l1_gt_usm`` is set false for the AESOP term here.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        translate_gan_options(opt, 'AesopRealESRGANArtifactsDisModel', aesop_required=True)
        if opt.get('is_train'):
            if opt.get('l1_gt_usm', True):
                get_root_logger().info('l1_gt_usm: false for AESOP (their model compares psi(SR) with psi of the '
                                       'plain GT; their l1_gt_usm applies to an L1 term their file does not have).')
            opt['l1_gt_usm'] = False
        fill_in_better(opt)  # their LPIPS/DISTS entries have no better: lower
        super().__init__(opt)


# ---------------------------------------------------------------- datasets
def translate_dataset_options(dataset_opt: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of a dataset's options with their ``use_flip`` also given as BasicSR's ``use_hflip``."""
    dataset_opt = dict(dataset_opt)
    if 'use_flip' in dataset_opt and 'use_hflip' not in dataset_opt:
        dataset_opt['use_hflip'] = dataset_opt['use_flip']
    return dataset_opt


def scans_its_folder(dataset_opt: Mapping[str, Any]) -> bool:
    """A RealESRGANDataset on disk with ``meta_info: ~``: their dataset lists ``dataroot_gt`` itself."""
    return (dataset_opt.get('type') == 'RealESRGANDataset' and 'meta_info' in dataset_opt
            and dataset_opt['meta_info'] is None and (dataset_opt.get('io_backend') or {}).get('type') == 'disk')


def build_dataset_with_fork_keys(build: Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, Any]], Any]:
    """BasicSR's ``build_dataset``, taking the fork's dataset keys too."""

    @functools.wraps(build)
    def build_dataset(dataset_opt: Mapping[str, Any]) -> Any:
        dataset_opt = translate_dataset_options(dataset_opt)
        if not scans_its_folder(dataset_opt):
            return build(dataset_opt)
        # BasicSR's RealESRGANDataset reads its image list from meta_info in __init__ only
        names = sorted(scandir(dataset_opt['dataroot_gt']))
        with tempfile.TemporaryDirectory(prefix='aesop_meta_info_') as folder:
            dataset_opt['meta_info'] = os.path.join(folder, 'meta_info.txt')
            with open(dataset_opt['meta_info'], 'w') as f:
                f.writelines(f'{name}\n' for name in names)
            get_root_logger().info(f'Dataset {dataset_opt.get("name")}: meta_info ~ lists the {len(names)} files of '
                                   f'{dataset_opt["dataroot_gt"]}, as {FORK} does.')
            return build(dataset_opt)

    build_dataset.fork_keys = True
    return build_dataset


def install_dataset_keys() -> None:
    """Wrap ``build_dataset`` where BasicSR's train/test pipelines and users find it (once per process)."""
    if getattr(basicsr.data.build_dataset, 'fork_keys', False):
        return
    wrapped = build_dataset_with_fork_keys(basicsr.data.build_dataset)
    for module in (basicsr.data, basicsr.train, basicsr.test):
        module.build_dataset = wrapped


install_dataset_keys()
