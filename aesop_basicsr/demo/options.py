"""The BasicSR option files ``aesop-demo`` writes and runs: a CPU-sized version of the paper's recipe.

Four stages, each a plain BasicSR option dict (rerunnable with ``aesop-train -opt FILE`` from the
demo's report folder, where all paths are relative to):

1. ``SRModel``: a small MSRResNet trained with L1, the PSNR-oriented network (the paper's decoder
   and GAN initialisation: ESRGAN's PSNR model).
2. ``AESOPAEModel``: the auto-encoder psi = D(E(.)), decoder initialised from stage 1 and fine-tuned
   with L1(psi(HR), HR); the encoder E is the paper's fixed bicubic downsampler (its encoder ablation),
   not the learned one (see AUTOENCODER).
3. and 4. ``ESRGANLDLModel`` (ESRGAN + LDL's artifact term, the paper's setup) from stage 1, identical
   except for ``train.pixel_opt``: L1 or AESOPLoss.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional

SCALE = 4
GT_SIZE = 128  # the GANs' HR patches: VGGStyleDiscriminator accepts 128 or 256 px inputs only
# The PSNR network's and the auto-encoder's HR patches: a 64 px patch has a quarter of a 128 px one's
# pixels, so these stages see twice the GANs' batch at half their pixels per iteration.
PRETRAIN_GT_SIZE = 64
DATA_ROOT = 'data'
EXPERIMENTS = 'experiments'

# The generator (and the auto-encoder's decoder) is BasicSR's MSRResNet (SRResNet without batch norm, the
# generator of SRGAN's line), not a tiny RRDBNet: it adds its output to the bilinearly upsampled LR image,
# so it keeps the LR's mean colour from its first step and learns the residual only. A tiny RRDBNet
# (16 features, 2 blocks) trained for the minutes a CPU demo has leaves colour casts of 1-3 grey levels per
# channel on held-out photos (coffee: R -1.4, G +1.7), whatever its loss (L1 or MSE), learning rate or length,
# and its GANs drift further (brick: B +2.9); MSRResNet stays within 0.2 grey levels and reaches 1.2 dB more
# PSNR-Y (29.47 vs 28.23 dB after 800 iterations) in less time. The paper's RRDBNet recipes are the option
# files in options/train/AESOP/.
GENERATOR: Dict[str, Any] = dict(type='MSRResNet', num_in_ch=3, num_out_ch=3, num_feat=32, num_block=4,
                                 upscale=SCALE)
# The encoder is the fixed antialiased bicubic downsampler (encoder_type 'bicubic', the paper's encoder
# ablation), not the learned RRDB encoder: in the few hundred iterations a CPU demo affords, the learned
# encoder's linear stem (two 3-channel convolutions, initialised at 0.1 scale) learns only two of the three
# colour directions, whatever the data, seed, width or loss weights tried. A uniform colour cast along the
# third is then invisible to E and so to AESOP, and the AESOP-GAN drifts along it (-9 grey levels of green,
# -44 of blue in another run). A fixed bicubic E passes every colour, like the LR images it stands for;
# encoder_type 'rrdb' in options/2_ae.yml (with lr_opt) restores the learned one.
AUTOENCODER: Dict[str, Any] = dict(type='AESOPAutoEncoder', scale=SCALE, num_in_ch=3, encoder_type='bicubic',
                                   decoder=GENERATOR)
DISCRIMINATOR: Dict[str, Any] = dict(type='VGGStyleDiscriminator', num_in_ch=3, num_feat=16, input_size=GT_SIZE)

# The paper's relativistic GAN weight. Without VGG19 weights on disk the demo has no perceptual term, and
# nothing but the discriminator then decides the detail above the LR band, which AESOP by design leaves
# free (L1 at least pulls it towards the mean): at 5e-3 the AESOP-GAN grew a 4-px grid within 150
# iterations (HF energy 3.2x HR's, PSNR-Y -4 dB), at 1e-3 it did not. The paper always pairs AESOP with
# VGG19's perceptual loss (weight 1).
GAN_WEIGHT, GAN_WEIGHT_WITHOUT_PERCEPTUAL = 5e-3, 1e-3

# The paper's VGG19 perceptual layers and weights (before ReLU), used when VGG19 weights are on disk.
PERCEPTUAL_LAYERS = {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1, 'conv4_4': 1, 'conv5_4': 1}

STAGE_NAMES = {'psnr': 'demo_1_psnr', 'ae': 'demo_2_ae', 'gan_l1': 'demo_3_gan_l1', 'gan_aesop': 'demo_4_gan_aesop'}


@dataclass
class DemoSettings:
    """Lengths and switches of the demo's four training runs."""
    psnr_iters: int = 600
    ae_iters: int = 100
    gan_iters: int = 120
    batch_size: int = 4  # the GANs' (GT_SIZE patches)
    pretrain_batch_size: int = 8  # the PSNR network's and the auto-encoder's (PRETRAIN_GT_SIZE patches)
    perceptual: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ('psnr_iters', 'ae_iters', 'gan_iters', 'batch_size', 'pretrain_batch_size'):
            if int(getattr(self, key)) < 1:
                raise ValueError(f'{key} must be at least 1; got {getattr(self, key)}.')


def checkpoint_path(stage: str) -> str:
    """The latest net_g checkpoint a stage saves (relative to the report folder)."""
    return f'{EXPERIMENTS}/{STAGE_NAMES[stage]}/models/net_g_latest.pth'


def dataset_folders(split: str) -> Dict[str, str]:
    """HR/LR folders of a split, as ``sample_data.write_paired_dataset`` writes them."""
    return {'gt': f'{DATA_ROOT}/{split}/hr', 'lq': f'{DATA_ROOT}/{split}/lr_x{SCALE}'}


def _datasets(batch_size: int, gt_size: int) -> Dict[str, Any]:
    train, val = dataset_folders('train'), dataset_folders('val')
    return {
        'train': dict(name='DemoTrain', type='PairedImageDataset', dataroot_gt=train['gt'], dataroot_lq=train['lq'],
                      io_backend={'type': 'disk'}, filename_tmpl='{}', gt_size=gt_size, use_hflip=True, use_rot=True,
                      num_worker_per_gpu=0, batch_size_per_gpu=batch_size, dataset_enlarge_ratio=2,
                      prefetch_mode=None),
        'val': dict(name='DemoVal', type='PairedImageDataset', dataroot_gt=val['gt'], dataroot_lq=val['lq'],
                    io_backend={'type': 'disk'}, filename_tmpl='{}'),
    }


def _val(iters: int) -> Dict[str, Any]:
    return dict(val_freq=max(1, iters // 2), save_img=False,
                metrics={'psnr': dict(type='calculate_psnr', crop_border=SCALE, test_y_channel=True),
                         'ssim': dict(type='calculate_ssim', crop_border=SCALE, test_y_channel=True)})


def _adam(lr: float) -> Dict[str, Any]:
    return dict(type='Adam', lr=lr, weight_decay=0, betas=[0.9, 0.99])


def _common(stage: str, model_type: str, settings: DemoSettings, iters: int) -> Dict[str, Any]:
    gan = stage.startswith('gan')
    batch_size, gt_size = (settings.batch_size, GT_SIZE) if gan else (settings.pretrain_batch_size, PRETRAIN_GT_SIZE)
    return dict(
        name=STAGE_NAMES[stage], model_type=model_type, scale=SCALE, num_gpu='auto', manual_seed=settings.seed,
        datasets=_datasets(batch_size, gt_size),
        val=_val(iters),
        logger=dict(print_freq=max(1, iters // 20), save_checkpoint_freq=iters, use_tb_logger=False,
                    wandb=dict(project=None, resume_id=None)),
        dist_params=dict(backend='nccl', port=29500))


def psnr_options(settings: DemoSettings) -> Dict[str, Any]:
    """Stage 1: the PSNR-oriented SR network (L1 only), from scratch, cosine-annealed."""
    opt = _common('psnr', 'SRModel', settings, settings.psnr_iters)
    opt['network_g'] = dict(GENERATOR)
    opt['path'] = dict(pretrain_network_g=None, strict_load_g=True, resume_state=None)
    opt['train'] = dict(
        ema_decay=0,  # EMA needs far longer runs than a demo's to help
        optim_g=_adam(1e-3),
        scheduler=dict(type='CosineAnnealingRestartLR', periods=[settings.psnr_iters], restart_weights=[1],
                       eta_min=1e-5),
        total_iter=settings.psnr_iters, warmup_iter=-1,
        pixel_opt=dict(type='L1Loss', loss_weight=1.0, reduction='mean'))
    return opt


def ae_options(settings: DemoSettings) -> Dict[str, Any]:
    """Stage 2: the AESOP auto-encoder, decoder initialised from stage 1 and fine-tuned through the fixed encoder.

    The paper's AE recipe (Adam 1e-4, constant learning rate, L1(psi(HR), HR)) without its LR term,
    which a fixed encoder has no parameters for.
    """
    opt = _common('ae', 'AESOPAEModel', settings, settings.ae_iters)
    opt['network_g'] = dict(AUTOENCODER)
    opt['path'] = dict(pretrain_network_decoder=checkpoint_path('psnr'), param_key_decoder='params',
                       strict_load_decoder=True, resume_state=None)
    opt['train'] = dict(
        ema_decay=0,
        freeze_decoder_iters=0,
        optim_g=_adam(1e-4),
        scheduler=dict(type='MultiStepLR', milestones=[settings.ae_iters], gamma=1),
        total_iter=settings.ae_iters, warmup_iter=-1,
        pixel_opt=dict(type='L1Loss', loss_weight=1.0, reduction='mean'))
    return opt


def l1_pixel_opt() -> Dict[str, Any]:
    return dict(type='L1Loss', loss_weight=1.0, reduction='mean')


def aesop_pixel_opt() -> Dict[str, Any]:
    """AESOPLoss in place of L1: same weight, the auto-encoder of stage 2."""
    return dict(type='AESOPLoss', autoencoder=dict(AUTOENCODER), loss_weight=1.0, criterion='l1', reduction='mean',
                pretrain_network_ae=checkpoint_path('ae'), param_key_ae='params', strict_load_ae=True)


def gan_options(settings: DemoSettings, stage: str, pixel_opt: Dict[str, Any]) -> Dict[str, Any]:
    """Stages 3/4: ESRGAN+LDL from the PSNR network; only ``pixel_opt`` differs between the two runs."""
    opt = _common(stage, 'ESRGANLDLModel', settings, settings.gan_iters)
    opt['network_g'] = dict(GENERATOR)
    opt['network_d'] = dict(DISCRIMINATOR)
    opt['path'] = dict(pretrain_network_g=checkpoint_path('psnr'), param_key_g='params', strict_load_g=True,
                       resume_state=None)
    perceptual: Optional[Dict[str, Any]] = None
    if settings.perceptual:
        perceptual = dict(type='PerceptualLoss', layer_weights=dict(PERCEPTUAL_LAYERS), vgg_type='vgg19',
                          use_input_norm=True, range_norm=False, perceptual_weight=1.0, style_weight=0,
                          criterion='l1')
    opt['train'] = dict(
        ema_decay=0.999,  # LDL's artifact map compares the output with the EMA generator's
        optim_g=_adam(1e-4), optim_d=_adam(1e-4),
        scheduler=dict(type='MultiStepLR', milestones=[settings.gan_iters], gamma=0.5),
        total_iter=settings.gan_iters, warmup_iter=-1,
        pixel_opt=pixel_opt,
        ldl_opt=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
        perceptual_opt=perceptual,
        gan_opt=dict(type='GANLoss', gan_type='vanilla', real_label_val=1.0, fake_label_val=0.0,
                     loss_weight=GAN_WEIGHT if settings.perceptual else GAN_WEIGHT_WITHOUT_PERCEPTUAL),
        net_d_iters=1, net_d_init_iters=0)
    return opt


def all_options(settings: DemoSettings) -> Dict[str, Dict[str, Any]]:
    """Stage key -> option dict, in the order the demo runs them."""
    return {
        'psnr': psnr_options(settings),
        'ae': ae_options(settings),
        'gan_l1': gan_options(settings, 'gan_l1', l1_pixel_opt()),
        'gan_aesop': gan_options(settings, 'gan_aesop', aesop_pixel_opt()),
    }
