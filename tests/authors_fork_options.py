"""The authors' 23 option files (github.com/2minkyulee/AESOP-SR, ``AESOP/options/``), described, not copied.

Each function returns one of their files as an option dict with *their* types and keys (every key, in their
nesting) and values that are theirs except where a value is a path, a machine setting (GPUs, workers,
batch, logging) or, with ``full=False``, a network size or a run length. Their files are their code and
are not in this repository; ``scripts/check_authors_option_files.py`` reads the real ones from a clone and
checks that every description here has exactly their key paths and types, then builds their test files at
full size.

``Data`` holds the paths a description points at (tiny real-photo data in the tests).
"""
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

BENCHMARKS = ('Set14', 'Manga109', 'General100', 'Urban100', 'DIV2K100', 'BSD100mod12', 'LSDIR250mod12')
REAL_WORLD_SET = 'RealWorld38+DIV2Kmini'
FOUR_METRICS = ('psnr', 'ssim', 'lpips', 'dists')


@dataclass
class Data:
    """Where a described file's paths point."""
    train_gt: str = 'YOUR_HR_PATH'
    train_lq: str = 'YOUR_LR_PATH'
    val_gt: str = 'HR'
    val_lq: str = 'LR'
    pretrain_g: Optional[str] = None
    pretrain_decoder: Optional[str] = None
    autoencoder: str = 'AE_RRDBdecoder_100K.pth'
    # test files: benchmark name -> (HR folder, LR folder)
    benchmarks: Dict[str, tuple] = field(default_factory=dict)


# ---------------------------------------------------------------- networks (their keys)
def rrdbnet(full: bool, grow: bool = True, use_checkpoint: Optional[bool] = None) -> Dict[str, Any]:
    net = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=64 if full else 8, num_block=23 if full else 1)
    if grow:
        net['num_grow_ch'] = 32 if full else 4
    if use_checkpoint is not None:
        net['use_checkpoint'] = use_checkpoint
    return net


def swinir(full: bool) -> Dict[str, Any]:
    return dict(type='SwinIR', upscale=4, in_chans=3, img_size=64 if full else 16, window_size=8 if full else 4,
                img_range=1., depths=[6] * 6 if full else [1], embed_dim=180 if full else 12,
                num_heads=[6] * 6 if full else [2], mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv')


def drct(full: bool) -> Dict[str, Any]:
    return dict(type='DRCT', upscale=4, in_chans=3, img_size=64 if full else 16, window_size=16 if full else 4,
                compress_ratio=3, squeeze_factor=30 if full else 2, conv_scale=0.01, overlap_ratio=0.5, img_range=1.,
                depths=[6] * 6 if full else [1], embed_dim=180 if full else 12, num_heads=[6] * 6 if full else [2],
                mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv', use_checkpoint=True)


def spsrnet(full: bool) -> Dict[str, Any]:
    # SPSR's gradient branch reads the trunk after RRDB 5, 10, 15 and 20: at least 20 blocks, even tiny
    return dict(type='SPSRNet', in_nc=3, out_nc=3, nf=64 if full else 4, nb=23 if full else 20, gc=32 if full else 4)


def rrdbnet_legacy(full: bool) -> Dict[str, Any]:
    return dict(type='RRDBNet_LEGACY', in_nc=3, out_nc=3, nf=64 if full else 8, nb=23 if full else 1, gc=32)


def autoencoder(full: bool) -> Dict[str, Any]:
    """Their AutoEncoder_RRDBNet; tiny: decoder width 48 (a 3-channel encoder stem, 48 / 16)."""
    dec = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=64 if full else 48, num_block=23 if full else 1,
               num_grow_ch=32 if full else 4)
    return dict(type='AutoEncoder_RRDBNet', enc_opt=dict(placeholder=0), dec_opt=dec)


# ---------------------------------------------------------------- shared blocks
def _paired(name: str, gt: str, lq: str) -> Dict[str, Any]:
    return dict(name=name, type='PairedImageDataset', dataroot_gt=gt, dataroot_lq=lq, io_backend=dict(type='disk'))


def _paired_train(data: Data, gt_size: int, full: bool, **extra) -> Dict[str, Any]:
    opt = dict(name='DF2K', type='PairedImageDataset', dataroot_gt=data.train_gt, dataroot_lq=data.train_lq,
               filename_tmpl='{}', io_backend=dict(type='disk'), gt_size=gt_size, use_flip=True, use_rot=True,
               use_shuffle=True, num_worker_per_gpu=16 if full else 0, batch_size_per_gpu=16 if full else 1)
    opt.update(extra)
    return opt


def _adam() -> Dict[str, Any]:
    return dict(type='Adam', lr=1e-4, weight_decay=0, betas=[0.9, 0.99])


def _logger(full: bool, project: str) -> Dict[str, Any]:
    """Theirs log to tensorboard and wandb; the tiny runs log to neither (logging is a machine setting)."""
    return dict(print_freq=100 if full else 1, save_checkpoint_freq=5e3 if full else 2, use_tb_logger=full,
                wandb=dict(project=project if full else None, resume_id=None))


def _dist() -> Dict[str, Any]:
    return dict(backend='nccl', port=29500)


def _perceptual(conv1_2: bool = True) -> Dict[str, Any]:
    layers = dict(conv1_2=0.1, conv2_2=0.1, conv3_4=1, conv4_4=1, conv5_4=1)
    if not conv1_2:
        del layers['conv1_2']
    return dict(type='PerceptualLoss', layer_weights=layers, vgg_type='vgg19', use_input_norm=True, range_norm=False,
                perceptual_weight=1.0, style_weight=0, criterion='l1')


def _gan(weight: float) -> Dict[str, Any]:
    return dict(type='GANLoss', gan_type='vanilla', real_label_val=1.0, fake_label_val=0.0, loss_weight=weight)


def _aesop(data: Data, full: bool) -> Dict[str, Any]:
    return dict(type='AutoEncoderLoss', loss_weight=1.0, as_loss_map=False, reduction='mean', criterion='l1',
                autoencoder_arch=autoencoder(full), autoencoder_load=dict(path=data.autoencoder, key='params_ema'))


def _metric(kind: str, crop: int, y: Optional[bool] = True) -> Dict[str, Any]:
    metric = dict(type=kind, crop_border=crop)
    if y is not None:
        metric['test_y_channel'] = y
    return metric


def _pytorch_metrics(names) -> Dict[str, Any]:
    """Their test-file metrics: PSNR/SSIM on Y with a 4 px border, LPIPS/DISTS without a crop."""
    table = {'psnr': _metric('calculate_psnr_pytorch', 4), 'ssim': _metric('calculate_ssim_pytorch', 4),
             'lpips': _metric('calculate_lpips_pytorch', 0, None), 'dists': _metric('calculate_dists_pytorch', 0, None)}
    return {name: table[name] for name in names}


# ---------------------------------------------------------------- training files
def _ae_training(name: str, data: Data, full: bool, decoder_key: str) -> Dict[str, Any]:
    return {
        'name': name, 'model_type': 'AEModel', 'scale': 4, 'num_gpu': 4 if full else 0, 'manual_seed': 0,
        'datasets': {'train': _paired_train(data, 256 if full else 64, full, dataset_enlarge_ratio=1,
                                            prefetch_mode=None),
                     'val': _paired('DIV2Kval', data.val_gt, data.val_lq)},
        'network_g': autoencoder(full),
        'path': {'pretrain_network_decoder': data.pretrain_decoder, 'param_key_decoder': decoder_key,
                 'strict_load_decoder': True, 'pretrain_network_g': None, 'param_key_g': None, 'strict_load_g': True,
                 'resume_state': None},
        'train': {'optim_g': _adam(), 'scheduler': dict(type='MultiStepLR', milestones=[300000], gamma=1),
                  'total_iter': 100000 if full else 2, 'warmup_iter': -1,
                  'pixel_opt': dict(type='L1Loss', loss_weight=1, reduction='mean'), 'ema_decay': 0.999},
        'val': {'val_freq': 5e3 if full else 2, 'val_start_iter': 0, 'save_img': True,
                'metrics': {'psnr': _metric('calculate_psnr', 4), 'ssim': _metric('calculate_ssim', 4)}},
        'logger': _logger(full, 'AESOP_AutoEncoder'),
        'dist_params': _dist(),
    }


def train_synthetic_ae(data: Data, full: bool = False) -> Dict[str, Any]:
    """``train/AutoEncoder/train_Synthetic_AE_RRDB_LRrecon1.yml``: L1 + 1.0 L1 at LR, decoder never frozen."""
    opt = _ae_training('train_synthetic_AutoEncoder_RRDB_LRrecon1', data, full, 'params_ema')
    opt['train']['pixel_at_LR_opt'] = dict(type='L1Loss', loss_weight=1, reduction='mean')
    opt['train']['freeze_decoder'] = 0
    return opt


def train_realworld_ae(data: Data, full: bool = False) -> Dict[str, Any]:
    """``train/AutoEncoder/train_Realworld_AE_RRDB_DecoderFreeze.yml``: the RealESRNet decoder frozen throughout."""
    opt = _ae_training('train_realworld_AutoEncoder_RRDB_DecoderFreeze', data, full, 'params_ema')
    opt['find_unused_parameters'] = True
    opt['datasets']['val']['name'] = 'DIV2Kmini'
    opt['train']['freeze_decoder'] = 9999999
    return opt


def _aesop_training(name: str, data: Data, full: bool, network_g: Dict[str, Any], gt_size: int, seed: int,
                    milestones: List[int], discriminator: str, **train_set) -> Dict[str, Any]:
    return {
        'name': name, 'model_type': 'AesopESRGANArtifactsDisModel', 'scale': 4, 'num_gpu': 4 if full else 0,
        'manual_seed': seed,
        'datasets': {'train': _paired_train(data, gt_size, full, dataset_enlarge_ratio=100 if full else 1,
                                            **train_set),
                     'val': _paired('DIV2K100', data.val_gt, data.val_lq)},
        'network_g': network_g,
        'network_d': dict(type=discriminator, num_in_ch=3, num_feat=64 if full else 4),
        'path': {'pretrain_network_g': data.pretrain_g, 'param_key_g': 'params_ema', 'strict_load_g': True,
                 'resume_state': None},
        'train': {'optim_g': _adam(), 'optim_d': _adam(),
                  'scheduler': dict(type='MultiStepLR', milestones=milestones,
                                    gamma=1 if len(milestones) == 1 else 0.5),
                  'total_iter': 300000 if full else 2, 'warmup_iter': -1, 'aesop_opt': _aesop(data, full),
                  'artifacts_opt': dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
                  'perceptual_opt': _perceptual(), 'gan_opt': _gan(5e-3),
                  'net_d_iters': 1, 'net_d_init_iters': 0, 'ema_decay': 0.999},
        'val': {'val_freq': 5e3 if full else 2, 'val_start_iter': 0, 'save_img': True,
                'metrics': {'psnr': _metric('calculate_psnr_pytorch', 4), 'dists': _metric('calculate_dists_pytorch',
                                                                                          0, None)}},
        'logger': _logger(full, 'AESOP'),
        'dist_params': _dist(),
    }


def train_synthetic_aesop_rrdb(data: Data, full: bool = False) -> Dict[str, Any]:
    """``train/AESOP/train_Synthetic_AESOP_RRDB.yml`` (RRDB128; RRDB256 is gt_size 256)."""
    return _aesop_training('train_synthetic_AESOP_RRDB', data, full, rrdbnet(full, grow=False), 128, 0, [300000],
                           'VGGStyleDiscriminator128', prefetch_mode=None)


def train_synthetic_aesop_swinir(data: Data, full: bool = False) -> Dict[str, Any]:
    """``train/AESOP/train_Synthetic_AESOP_SwinIR.yml``."""
    return _aesop_training('train_synthetic_AESOP_SwinIR', data, full, swinir(full), 256, 1, [600000],
                           'VGGStyleDiscriminator256', prefetch_mode=None)


def train_synthetic_aesop_drct(data: Data, full: bool = False) -> Dict[str, Any]:
    """``train/AESOP/train_Synthetic_AESOP_DRCT.yml``."""
    return _aesop_training('train_synthetic_AESOP_DRCT', data, full, drct(full), 256, 1, [400000, 600000],
                           'VGGStyleDiscriminator256', prefetch_mode='cuda' if full else None, pin_memory=True)


# Real-ESRGAN's degradations with the authors' milder ranges (their train_RealWorld_AESOP.yml)
REAL_DEGRADATION = dict(
    l1_gt_usm=True, percep_gt_usm=True, gan_gt_usm=False,
    resize_prob=[0.2, 0.7, 0.1], resize_range=[0.20, 1.5], gaussian_noise_prob=0.5, noise_range=[1, 30],
    poisson_scale_range=[0.05, 2], gray_noise_prob=0.4, jpeg_range=[50, 95],
    second_blur_prob=0.8, resize_prob2=[0.3, 0.4, 0.3], resize_range2=[0.3, 1.2], gaussian_noise_prob2=0.5,
    noise_range2=[1, 20], poisson_scale_range2=[0.05, 2], gray_noise_prob2=0.4, jpeg_range2=[50, 95])
REAL_KERNELS = dict(
    blur_kernel_size=21, kernel_list=['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                      'plateau_aniso'],
    kernel_prob=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob=0.1, blur_sigma=[0.2, 3], betag_range=[0.5, 4],
    betap_range=[1, 2], blur_kernel_size2=21,
    kernel_list2=['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'],
    kernel_prob2=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob2=0.1, blur_sigma2=[0.2, 1.5], betag_range2=[0.5, 4],
    betap_range2=[1, 2], final_sinc_prob=0.8)


def train_realworld_aesop(data: Data, full: bool = False) -> Dict[str, Any]:
    """``train/AESOP/train_RealWorld_AESOP.yml``: Real-ESRGAN's pipeline, AESOP instead of L1 (needs CUDA)."""
    batch = 12 if full else 1
    train_set = dict(name='DF2K+OST', type='RealESRGANDataset', dataroot_gt=data.train_gt, meta_info=None,
                     io_backend=dict(type='disk'), **REAL_KERNELS, gt_size=256 if full else 64, use_hflip=True,
                     use_rot=False, use_shuffle=True, num_worker_per_gpu=12 if full else 0, batch_size_per_gpu=batch,
                     dataset_enlarge_ratio=10 if full else 1, prefetch_mode='cuda' if full else None, pin_memory=True)
    val_set = dict(_paired('DRealSR', data.val_gt, data.val_lq), metrics={'psnr': _metric('calculate_psnr', 4)})
    return {
        'name': 'train_realworld_AESOP_RRDB_AE100K:HRrec1_LRrec0_decoderfreeze',
        'model_type': 'AesopRealESRGANArtifactsDisModel', 'scale': 4, 'num_gpu': 4 if full else 0, 'manual_seed': 0,
        **REAL_DEGRADATION, 'gt_size': 256 if full else 64, 'queue_size': 144 if full else batch,
        'datasets': {'train': train_set, 'val': val_set},
        'network_g': rrdbnet(full, use_checkpoint=True),
        'network_d': dict(type='UNetDiscriminatorSN', num_in_ch=3, num_feat=64 if full else 4, skip_connection=True),
        'path': {'pretrain_network_g': data.pretrain_g, 'param_key_g': 'params_ema', 'strict_load_g': True,
                 'resume_state': None},
        'train': {'optim_g': _adam(), 'optim_d': _adam(),
                  'scheduler': dict(type='MultiStepLR', milestones=[400000], gamma=0.5),
                  'total_iter': 400000 if full else 2, 'warmup_iter': -1,
                  'perceptual_opt': _perceptual(conv1_2=False), 'aesop_opt': _aesop(data, full), 'gan_opt': _gan(1e-1),
                  'net_d_iters': 1, 'net_d_init_iters': 0, 'ema_decay': 0.999},
        'val': {'val_start_iter': 0, 'val_freq': 5e3 if full else 2, 'save_img': True,
                'metrics': {'psnr': _metric('calculate_psnr_pytorch', 4)}},
        'logger': _logger(full, 'AESOP_realworld'),
        'dist_params': _dist(),
    }


TRAINING_FILES: Dict[str, Callable[..., Dict[str, Any]]] = {
    'train/AutoEncoder/train_Synthetic_AE_RRDB_LRrecon1.yml': train_synthetic_ae,
    'train/AutoEncoder/train_Realworld_AE_RRDB_DecoderFreeze.yml': train_realworld_ae,
    'train/AESOP/train_Synthetic_AESOP_RRDB.yml': train_synthetic_aesop_rrdb,
    'train/AESOP/train_Synthetic_AESOP_SwinIR.yml': train_synthetic_aesop_swinir,
    'train/AESOP/train_Synthetic_AESOP_DRCT.yml': train_synthetic_aesop_drct,
    'train/AESOP/train_RealWorld_AESOP.yml': train_realworld_aesop,
}


# ---------------------------------------------------------------- test files
def _test_file(name: str, network_g: Dict[str, Any], data: Data, full: bool, metrics=FOUR_METRICS,
               real_world: bool = False, single: bool = False) -> Dict[str, Any]:
    if real_world:
        sets = {'test_1': _paired(REAL_WORLD_SET, *data.benchmarks.get(REAL_WORLD_SET, ('pseudoHR_x4', 'original')))}
    else:
        sets = {}
        for index, bench in enumerate(BENCHMARKS, start=2):
            gt, lq = data.benchmarks.get(bench, ('HR', 'LR'))
            sets[f'test_{index}'] = (dict(name=bench, type='SingleImageDataset', dataroot_lq=gt,
                                          io_backend=dict(type='disk')) if single else _paired(bench, gt, lq))
    opt = {'name': name, 'model_type': 'ESRGANModel', 'scale': 4, 'num_gpu': 1 if full else 0, 'manual_seed': 0,
           'datasets': sets, 'network_g': network_g,
           'path': {'pretrain_network_g': data.pretrain_g, 'param_key_g': 'params_ema', 'strict_load_g': True},
           'val': {'save_img': True, 'suffix': ''}}
    if metrics:
        opt['val']['metrics'] = _pytorch_metrics(metrics)
    return opt


TEST_FILES: Dict[str, Callable[[Data, bool], Dict[str, Any]]] = {
    'test/AESOP/autoencoder/test_Autoencoder.yml':
        lambda d, f: _test_file('AESOP_AutoEncoder', autoencoder(f), d, f, metrics=(), single=True),
    'test/AESOP/main/test_Synthetic_AESOP_RRDB128.yml': lambda d, f: _test_file('AESOP_RRDB128', rrdbnet(f), d, f),
    'test/AESOP/main/test_Synthetic_AESOP_RRDB256.yml': lambda d, f: _test_file('AESOP_RRDB256', rrdbnet(f), d, f),
    'test/AESOP/main/test_Synthetic_AESOP_SwinIR256.yml': lambda d, f: _test_file('AESOP_SwinIR256', swinir(f), d, f),
    'test/AESOP/supp/test_Realworld_AESOP_RRDB256.yml':
        lambda d, f: _test_file('AESOP_RRDB_RealWorld', rrdbnet(f), d, f, ('psnr', ), real_world=True),
    'test/AESOP/supp/test_Synthetic_AESOP_DRCT256.yml':
        lambda d, f: _test_file('AESOP_DRCT', drct(f), d, f, ('psnr', )),
    'test/baselines/baselines_main/test_Synthetic_officialESRGAN.yml':
        lambda d, f: _test_file('official_ESRGAN', rrdbnet_legacy(f), d, f),
    'test/baselines/baselines_main/test_Synthetic_officialLDL_DF2K_RRDB.yml':
        lambda d, f: _test_file('official_LDL_DF2K_RRDB', rrdbnet(f), d, f),
    'test/baselines/baselines_main/test_Synthetic_officialLDL_DF2K_SwinIR.yml':
        lambda d, f: _test_file('official_LDL_DF2K_SwinIR', swinir(f), d, f),
    'test/baselines/baselines_main/test_Synthetic_officialRRDB.yml':
        lambda d, f: _test_file('official_RRDB', rrdbnet(f), d, f),
    'test/baselines/baselines_main/test_Synthetic_officialSPSR.yml':
        lambda d, f: _test_file('official_SPSR', spsrnet(f), d, f),
    'test/baselines/baselines_main/test_Synthetic_officialSwinIR_PSNR.yml':
        lambda d, f: _test_file('official_SwinIR_PSNR', swinir(f), d, f),
    'test/baselines/baselines_supp/test_Realworld_officialBSRGAN.yml':
        lambda d, f: _test_file('official_BSRGAN', rrdbnet_legacy(f), d, f, ('psnr', ), real_world=True),
    'test/baselines/baselines_supp/test_Realworld_officialNonRealESRGAN.yml':
        lambda d, f: _test_file('official_NonRealESRGAN', rrdbnet_legacy(f), d, f, ('psnr', ), real_world=True),
    'test/baselines/baselines_supp/test_Realworld_officialRealESRGAN.yml':
        lambda d, f: _test_file('official_RealESRGAN', rrdbnet(f), d, f, ('psnr', ), real_world=True),
    'test/baselines/baselines_supp/test_Realworld_officialRealLDL.yml':
        lambda d, f: _test_file('official_RealLDL', rrdbnet(f), d, f, ('psnr', ), real_world=True),
    'test/baselines/baselines_supp/test_Synthetic_reproduceDRCT_LDL.yml':
        lambda d, f: _test_file('reproduceDRCT_LDL', drct(f), d, f),
}


def key_paths(opt: Any, prefix: str = '') -> Dict[str, Any]:
    """``{'a:b:c': value}`` for every leaf of a nested option dict (lists are leaves); ``type`` values included."""
    if not isinstance(opt, dict) or not opt:
        return {prefix: opt}
    paths: Dict[str, Any] = {}
    for key, value in opt.items():
        paths.update(key_paths(value, f'{prefix}:{key}' if prefix else str(key)))
    return paths


def types_of(opt: Dict[str, Any]) -> Dict[str, str]:
    """``{'network_g': 'RRDBNet', ...}``: where each ``type`` sits and what it names."""
    return {path[:-len(':type')]: value for path, value in key_paths(deepcopy(opt)).items() if path.endswith(':type')}
