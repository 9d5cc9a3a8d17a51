"""Pretraining the AESOP auto-encoder psi = D(E(.)) (Lee et al., CVPR 2025).

Loss on an HR batch with its LR pair (BasicSR's ``PairedImageDataset``: ``gt`` = HR, ``lq`` = LR):

    L = pixel_opt(D(E(HR)), HR) [+ perceptual_opt(D(E(HR)), HR)] + lr_opt(E(HR), LR)

The paper uses L1 for both terms with weight 1; its real-world recipe drops the LR term and
keeps the decoder (a PSNR-oriented SR network) frozen. The saved ``net_g_*.pth`` files hold the
auto-encoder's own state dict under ``params`` (and ``params_ema``), which is exactly what
``AESOPLoss.pretrain_network_ae`` reads.
"""
from collections import OrderedDict
from os import path as osp
from typing import Any, Dict, List, Optional, Tuple

import torch
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY
from torch import Tensor, nn
from tqdm import tqdm

from aesop_basicsr.metrics.lower_is_better import fill_in_better
from aesop_basicsr.utils.checkpoint import load_pretrained, read_checkpoint
from aesop_basicsr.utils.fallback_registry import is_registered
from aesop_basicsr.utils.options import check_autoencoder_scales
from aesop_basicsr.utils.registry import register

DECODER_PREFIX = 'decoder.'
LR_METRIC_SUFFIX = '_lr'


def _loss_value(out: Any) -> Tensor:
    """A loss module's output as one tensor (BasicSR's PerceptualLoss returns a (percep, style) pair)."""
    if isinstance(out, (tuple, list)):
        parts = [part for part in out if part is not None]
        if not parts:
            raise ValueError('AESOPAEModel: a loss returned no value (all parts are None); check its weights.')
        return sum(parts)
    return out


@register(MODEL_REGISTRY)
class AESOPAEModel(SRModel):
    """Trains an ``AESOPAutoEncoder`` (``network_g``) to reconstruct HR images through an LR-sized code.

    Options beyond SRModel's:

    - ``train.pixel_opt`` (required): loss between D(E(HR)) and HR; any BasicSR loss.
    - ``train.lr_opt`` (optional): loss between E(HR) and the LR image; any BasicSR loss.
    - ``train.freeze_decoder_iters``: 0 trains the decoder throughout; N > 0 freezes it for
      iterations 1..N; a negative value freezes it for the whole run.
    - ``path.pretrain_network_decoder`` / ``param_key_decoder`` (default ``params``) /
      ``strict_load_decoder`` (default true): initialise only the decoder from an SR
      checkpoint, e.g. a PSNR-oriented RRDBNet. Exclusive with ``path.pretrain_network_g``
      (a whole auto-encoder), except when resuming, where net_g's checkpoint holds the decoder.

    Freezing and DDP. DistributedDataParallel records at wrap time which parameters require
    grad and expects a gradient for each of them in every iteration, so the decoder's
    ``requires_grad`` must never change after wrapping. Hence:

    - frozen for the whole run (negative value): ``requires_grad`` is switched off *before*
      the network is wrapped (:meth:`model_to_device`) and the decoder is left out of the
      optimizer; backward then computes no decoder weight gradients at all.
    - frozen for the first N iterations: ``requires_grad`` stays on and the decoder is in the
      optimizer from the start, so DDP sees the same parameters every iteration and reduces
      their gradients as usual; while frozen, those (reduced) gradients are dropped
      (set to None) before ``optimizer.step()``, so Adam neither moves the decoder nor
      builds moment state for it, and its bias correction starts fresh at unfreezing.

    In both cases the EMA copy of a frozen decoder is left as it is, so a frozen decoder is
    bit-identical in ``params`` and ``params_ema``.

    Validation reports each ``val.metrics`` entry for D(E(HR)) against HR under its own name,
    and for E(HR) against LR under ``<name>_lr`` (``crop_border`` divided by the scale).
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        self.freeze_decoder_iters = self._check_options(opt)
        fill_in_better(opt)  # LPIPS/DISTS in val.metrics (and their _lr copies): Best is the lowest value
        self._decoder_frozen: Optional[bool] = None  # the state of the last iteration
        super().__init__(opt)
        if not self.is_train:
            self._load_pretrained_decoder()

    # ---- options -----------------------------------------------------------------------
    @staticmethod
    def _check_options(opt: Dict[str, Any]) -> int:
        """Fail on inconsistent options before any network is built; return freeze_decoder_iters."""
        net_type = opt.get('network_g', {}).get('type')
        net_cls = ARCH_REGISTRY.get(net_type) if is_registered(ARCH_REGISTRY, net_type) else None
        if net_cls is None or not all(hasattr(net_cls, name) for name in ('encode', 'decode')):
            raise ValueError(f'AESOPAEModel: network_g:type is {net_type!r}; it must be an auto-encoder with '
                             'encode/decode and a decoder submodule, e.g. AESOPAutoEncoder.')
        check_autoencoder_scales(opt)  # network_g:scale is the run's scale
        path_opt = opt.get('path', {})
        if (path_opt.get('pretrain_network_g') and path_opt.get('pretrain_network_decoder')
                and not path_opt.get('resume_state')):
            raise ValueError('AESOPAEModel: path:pretrain_network_g (a whole auto-encoder, '
                             f'{path_opt["pretrain_network_g"]!r}) and path:pretrain_network_decoder '
                             f'(the decoder only, {path_opt["pretrain_network_decoder"]!r}) are both set; '
                             'set one of them to ~.')
        if not opt.get('is_train'):
            return 0
        train_opt = opt['train']
        if not train_opt.get('pixel_opt'):
            raise ValueError('AESOPAEModel: train:pixel_opt is required (the reconstruction loss between '
                             'D(E(HR)) and HR; the paper uses L1Loss with loss_weight 1).')
        if train_opt.get('lr_opt') and opt['network_g'].get('encoder_type', 'rrdb') != 'rrdb':
            raise ValueError(f'AESOPAEModel: train:lr_opt is set but network_g:encoder_type is '
                             f'{opt["network_g"]["encoder_type"]!r}, a fixed downsampler with no parameters '
                             'for the LR term to train; remove lr_opt.')
        freeze = train_opt.get('freeze_decoder_iters', 0)
        if isinstance(freeze, bool) or not isinstance(freeze, (int, float)) or int(freeze) != freeze:
            raise ValueError(f'AESOPAEModel: train:freeze_decoder_iters must be an integer '
                             f'(0 never, N the first N iterations, negative the whole run); got {freeze!r}.')
        return int(freeze)

    def decoder_frozen_at(self, current_iter: int) -> bool:
        """Whether the decoder is frozen in iteration ``current_iter`` (1-based, as in train_pipeline)."""
        return self.freeze_decoder_iters < 0 or current_iter <= self.freeze_decoder_iters

    # ---- building ----------------------------------------------------------------------
    def model_to_device(self, net: nn.Module) -> nn.Module:
        """Freeze a decoder frozen for the whole run *before* DDP wraps the network (see class doc)."""
        if self.is_train and self.freeze_decoder_iters < 0 and hasattr(net, 'decoder'):
            net.decoder.requires_grad_(False)
        return super().model_to_device(net)

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True, param_key: str = 'params') -> None:
        """Load ``path.pretrain_network_g`` with errors naming the option and file.

        Like BasicSR, ``params_ema`` falls back to ``params`` for a file saved without EMA.
        Also reads the authors' released auto-encoder files as they are.
        """
        net = self.get_bare_model(net)
        if param_key == 'params_ema':
            checkpoint = read_checkpoint(load_path, 'path:pretrain_network_g')
            if 'params_ema' not in checkpoint and isinstance(checkpoint.get('params'), dict):
                get_root_logger().info(f'{load_path} has no params_ema; loading its params into the EMA network.')
                param_key = 'params'
        get_root_logger().info(f'Loading {net.__class__.__name__} from {load_path} [{param_key}].')
        load_pretrained(net, load_path, param_key, strict, 'path:pretrain_network_g', 'path:param_key_g')

    def _load_pretrained_decoder(self) -> None:
        """Initialise the decoder from ``path.pretrain_network_decoder`` (not when resuming)."""
        path_opt = self.opt['path']
        load_path = path_opt.get('pretrain_network_decoder')
        if not load_path:
            return
        logger = get_root_logger()
        if path_opt.get('resume_state'):
            logger.info('Resuming: the decoder comes from the resumed net_g checkpoint, '
                        'not from path:pretrain_network_decoder.')
            return
        param_key = path_opt.get('param_key_decoder', 'params')
        decoder = self.get_bare_model(self.net_g).decoder
        load_pretrained(decoder, load_path, param_key, path_opt.get('strict_load_decoder', True),
                        'path:pretrain_network_decoder', 'path:param_key_decoder',
                        'Check network_g:decoder (type, num_feat, num_block, num_grow_ch, scale) against the file.')
        logger.info(f'Loaded the decoder ({decoder.__class__.__name__}) from {load_path} [{param_key}].')

    def init_training_settings(self) -> None:
        # the decoder is loaded first, so that the EMA network starts as a copy of it
        self._load_pretrained_decoder()
        super().init_training_settings()
        lr_opt = self.opt['train'].get('lr_opt')
        self.cri_lr = build_loss(lr_opt).to(self.device) if lr_opt else None

        logger = get_root_logger()
        n = self.freeze_decoder_iters
        if n < 0:
            logger.info('The decoder is frozen for the whole run (train:freeze_decoder_iters < 0).')
            if not (self.opt['path'].get('pretrain_network_decoder') or self.opt['path'].get('pretrain_network_g')):
                logger.warning('The decoder is frozen but no pretrained weights were given for it '
                               '(path:pretrain_network_decoder); it stays randomly initialised.')
        elif n > 0:
            logger.info(f'The decoder is frozen for iterations 1-{n} (train:freeze_decoder_iters).')

    def setup_optimizers(self) -> None:
        """SRModel's optimizer over the parameters that train (a decoder frozen for good does not)."""
        train_opt = self.opt['train']
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        if self.freeze_decoder_iters < 0:
            get_root_logger().info('The decoder is not optimised; the optimizer holds the encoder only.')
        optim_opt = dict(train_opt['optim_g'])
        optim_type = optim_opt.pop('type')
        self.optimizer_g = self.get_optimizer(optim_type, params, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    # ---- training ----------------------------------------------------------------------
    def feed_data(self, data: Dict[str, Any]) -> None:
        if 'gt' not in data:
            raise KeyError('AESOPAEModel trains on HR images: the dataset must provide "gt" '
                           '(e.g. PairedImageDataset with dataroot_gt).')
        self.gt = data['gt'].to(self.device)
        self.lq = data['lq'].to(self.device) if 'lq' in data else None

    def encode_decode(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(E(x), D(E(x))) from one forward pass through ``net_g`` (so through its DDP wrapper).

        E(x) is the decoder's input, captured by a forward pre-hook: the pass is the network's
        own ``forward``, which DDP needs in order to reduce the gradients of both terms.
        """
        decoder = self.get_bare_model(self.net_g).decoder
        codes: List[Tensor] = []
        handle = decoder.register_forward_pre_hook(lambda module, args: codes.append(args[0]))
        try:
            out = self.net_g(x)
        finally:
            handle.remove()
        if len(codes) > 1:  # DataParallel: one chunk per replica, in device order along the batch
            codes.sort(key=lambda code: code.device.index or 0)
            return torch.cat([code.to(out.device) for code in codes]), out
        return codes[0], out

    def compute_losses(self) -> Tuple[Tensor, 'OrderedDict[str, Tensor]']:
        """The total loss and its parts (``l_pix``, ``l_lr``, ...) for the batch given to feed_data."""
        self.encoded, self.output = self.encode_decode(self.gt)
        losses: 'OrderedDict[str, Tensor]' = OrderedDict()
        losses['l_pix'] = _loss_value(self.cri_pix(self.output, self.gt))
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            if l_percep is not None:
                losses['l_percep'] = l_percep
            if l_style is not None:
                losses['l_style'] = l_style
        if self.cri_lr:
            if self.lq is None:
                raise KeyError('AESOPAEModel: train:lr_opt needs LR images ("lq") from the training dataset; '
                               'use PairedImageDataset with dataroot_lq, or remove lr_opt.')
            if self.encoded.shape != self.lq.shape:
                raise ValueError(f'AESOPAEModel: E(HR) has shape {tuple(self.encoded.shape)} but the LR batch has '
                                 f'{tuple(self.lq.shape)}; check scale and dataroot_lq.')
            losses['l_lr'] = _loss_value(self.cri_lr(self.encoded, self.lq))
        return sum(losses.values()), losses

    def _log_freeze_change(self, frozen: bool, current_iter: int) -> None:
        if frozen == self._decoder_frozen:
            return
        if frozen:
            until = 'the end of the run' if self.freeze_decoder_iters < 0 else f'iteration {self.freeze_decoder_iters}'
            get_root_logger().info(f'Iter {current_iter}: the decoder is frozen until {until}.')
        else:
            get_root_logger().info(f'Iter {current_iter}: the decoder trains from now on '
                                   f'(train:freeze_decoder_iters={self.freeze_decoder_iters}).')
        self._decoder_frozen = frozen

    def optimize_parameters(self, current_iter: int) -> None:
        frozen = self.decoder_frozen_at(current_iter)
        self._log_freeze_change(frozen, current_iter)
        self.optimizer_g.zero_grad()
        l_total, losses = self.compute_losses()
        l_total.backward()
        if frozen:  # after DDP's reduction, before the step: the decoder does not move
            for param in self.get_bare_model(self.net_g).decoder.parameters():
                param.grad = None
        self.optimizer_g.step()

        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def model_ema(self, decay: float = 0.999) -> None:
        """BaseModel's EMA, leaving a frozen decoder's EMA copy untouched (it stays bit-identical)."""
        if decay == 0 or not self._decoder_frozen:
            return super().model_ema(decay)
        net_g_params = dict(self.get_bare_model(self.net_g).named_parameters())
        for name, ema_param in self.net_g_ema.named_parameters():
            if not name.startswith(DECODER_PREFIX):
                ema_param.data.mul_(decay).add_(net_g_params[name].data, alpha=1 - decay)

    # ---- validation --------------------------------------------------------------------
    def test(self) -> None:
        """E(HR) and D(E(HR)) of the validation batch with the EMA network if there is one."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.encoded = net.encode(self.gt)
            self.output = net.decode(self.encoded)
        net.train(was_training)

    def get_current_visuals(self) -> 'OrderedDict[str, Tensor]':
        out = OrderedDict(result=self.output.detach().cpu(), encoded=self.encoded.detach().cpu(),
                          gt=self.gt.detach().cpu())
        if self.lq is not None:
            out['lq'] = self.lq.detach().cpu()
        return out

    def _validation_metric_options(self) -> 'OrderedDict[str, Tuple[str, Dict[str, Any]]]':
        """name -> (``hr`` or ``lr``, metric options): each ``val.metrics`` entry for D(E(HR)) vs HR,
        and a ``<name>_lr`` copy for E(HR) vs LR with ``crop_border`` divided by the scale."""
        metrics = self.opt['val'].get('metrics') or {}
        scale = self.opt.get('scale', getattr(self.get_bare_model(self.net_g), 'scale', 1))
        options: 'OrderedDict[str, Tuple[str, Dict[str, Any]]]' = OrderedDict()
        for name, metric_opt in metrics.items():
            options[name] = ('hr', metric_opt)
        for name, metric_opt in metrics.items():
            lr_name = name + LR_METRIC_SUFFIX
            if lr_name in metrics:
                raise ValueError(f'AESOPAEModel: val:metrics:{lr_name} clashes with the LR copy of {name}; rename it.')
            lr_opt = dict(metric_opt)
            if 'crop_border' in lr_opt:
                lr_opt['crop_border'] = lr_opt['crop_border'] // scale
            options[lr_name] = ('lr', lr_opt)
        return options

    def _initialize_best_metric_results(self, dataset_name: str) -> None:
        if hasattr(self, 'best_metric_results') and dataset_name in self.best_metric_results:
            return
        if not hasattr(self, 'best_metric_results'):
            self.best_metric_results = dict()
        self.best_metric_results[dataset_name] = {
            name: dict(better=opt_.get('better', 'higher'),
                       val=float('-inf') if opt_.get('better', 'higher') == 'higher' else float('inf'), iter=-1)
            for name, (_, opt_) in self._validation_metric_options().items()
        }

    def _visualization_path(self, img_name: str, dataset_name: str, current_iter: Any, tag: str = '') -> str:
        """SRModel's file naming, with ``tag`` appended to the stem (``_lr`` for E(HR))."""
        if self.opt['is_train']:
            return osp.join(self.opt['path']['visualization'], img_name, f'{img_name}_{current_iter}{tag}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(self.opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}{tag}.png')

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img: bool) -> None:
        """PSNR/SSIM-style metrics of D(E(HR)) vs HR and E(HR) vs LR; saves both images if asked."""
        dataset_name = dataloader.dataset.opt['name']
        metric_opts = self._validation_metric_options()
        totals = {name: 0. for name in metric_opts}
        counts = {name: 0 for name in metric_opts}
        if metric_opts:
            self._initialize_best_metric_results(dataset_name)
        pbar = tqdm(total=len(dataloader), unit='image') if self.opt['val'].get('pbar', False) else None

        for val_data in dataloader:
            img_name = osp.splitext(osp.basename(val_data['gt_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            recon_img = tensor2img([self.output.detach().cpu()])
            encoded_img = tensor2img([self.encoded.detach().cpu()])
            pairs = {'hr': {'img': recon_img, 'img2': tensor2img([self.gt.detach().cpu()])}}
            if self.lq is not None:
                pairs['lr'] = {'img': encoded_img, 'img2': tensor2img([self.lq.detach().cpu()])}
            del self.gt, self.lq, self.output, self.encoded

            if save_img:
                imwrite(recon_img, self._visualization_path(img_name, dataset_name, current_iter))
                imwrite(encoded_img, self._visualization_path(img_name, dataset_name, current_iter, '_lr'))
            for name, (kind, metric_opt) in metric_opts.items():
                pair = pairs.get(kind)
                if pair is not None:
                    totals[name] += calculate_metric(pair, metric_opt)
                    counts[name] += 1
            if pbar:
                pbar.update(1)
                pbar.set_description(f'Test {img_name}')
        if pbar:
            pbar.close()

        if metric_opts:
            self.metric_results = {name: totals[name] / counts[name] for name in metric_opts if counts[name]}
            for name, value in self.metric_results.items():
                self._update_best_metric_result(dataset_name, name, value, current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
