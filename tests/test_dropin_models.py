"""AESOPLoss is a drop-in for the pixel loss of BasicSR's and Real-ESRGAN's models.

Each model is BasicSR's (or the realesrgan package's) real class, built by
``basicsr.models.build_model`` from an option dict whose only AESOP-specific part is
``pixel_opt``; it is fed real photos through the real datasets and takes optimizer steps.
"""
import copy
import math
import os

import pytest
import torch
from basicsr.archs.arch_util import default_init_weights
from basicsr.models import build_model
from basicsr.utils import DiffJPEG, set_random_seed
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils.data import DataLoader

import realesrgan  # noqa: F401  (registers the realesrgan package's models and datasets)
from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from aesop_basicsr.losses.aesop_loss import AESOPLoss

STEPS = 2
BATCH = 2
LOSS_WEIGHT = 0.5
TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, num_feat=16, num_grow_ch=4, num_block=1,
               decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                            scale=4))
RRDB_G = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
SWINIR_G = dict(type='SwinIR', upscale=4, in_chans=3, img_size=16, window_size=4, img_range=1., depths=[1],
                embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv')
VGG_D = dict(type='VGGStyleDiscriminator', num_in_ch=3, num_feat=4, input_size=128)
UNET_D = dict(type='UNetDiscriminatorSN', num_in_ch=3, num_feat=4, skip_connection=True)
GAN_OPT = dict(type='GANLoss', gan_type='vanilla', real_label_val=1.0, fake_label_val=0.0, loss_weight=0.1)

# Real-ESRGAN's degradation settings (train_realesrnet_x4plus.yml), on a 64-px GT crop
REAL_DEGRADATION = dict(
    resize_prob=[0.2, 0.7, 0.1], resize_range=[0.15, 1.5], gaussian_noise_prob=0.5, noise_range=[1, 30],
    poisson_scale_range=[0.05, 3], gray_noise_prob=0.4, jpeg_range=[30, 95], second_blur_prob=0.8,
    resize_prob2=[0.3, 0.4, 0.3], resize_range2=[0.3, 1.2], gaussian_noise_prob2=0.5, noise_range2=[1, 25],
    poisson_scale_range2=[0.05, 2.5], gray_noise_prob2=0.4, jpeg_range2=[30, 95], gt_size=64, queue_size=BATCH)
REAL_KERNELS = dict(
    blur_kernel_size=21, kernel_list=['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                      'plateau_aniso'],
    kernel_prob=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob=0.1, blur_sigma=[0.2, 3], betag_range=[0.5, 4],
    betap_range=[1, 2], blur_kernel_size2=21, kernel_list2=['iso', 'aniso', 'generalized_iso', 'generalized_aniso',
                                                            'plateau_iso', 'plateau_aniso'],
    kernel_prob2=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob2=0.1, blur_sigma2=[0.2, 1.5],
    betag_range2=[0.5, 4], betap_range2=[1, 2], final_sinc_prob=0.8)

# model_type -> (network_g, network_d, extra top-level options, data, key of the logged pixel loss)
CASES = {
    'SRModel': (RRDB_G, None, {}, 'paired64', 'l_pix'),
    'SRGANModel': (RRDB_G, VGG_D, {}, 'paired128', 'l_g_pix'),
    'ESRGANModel': (RRDB_G, VGG_D, {}, 'paired128', 'l_g_pix'),
    'SwinIRModel': (SWINIR_G, None, {}, 'paired64', 'l_pix'),
    'RealESRNetModel_basicsr': (RRDB_G, None, dict(REAL_DEGRADATION, gt_usm=True), 'RealESRGANDataset_basicsr',
                                'l_pix'),
    'RealESRGANModel_basicsr': (RRDB_G, UNET_D, dict(REAL_DEGRADATION, l1_gt_usm=True, percep_gt_usm=True,
                                                     gan_gt_usm=False), 'RealESRGANDataset_basicsr', 'l_g_pix'),
    'RealESRNetModel': (RRDB_G, None, dict(REAL_DEGRADATION, gt_usm=True), 'RealESRGANDataset', 'l_pix'),
    'RealESRGANModel': (RRDB_G, UNET_D, dict(REAL_DEGRADATION, l1_gt_usm=True, percep_gt_usm=True,
                                             gan_gt_usm=False), 'RealESRGANDataset', 'l_g_pix'),
}


def tiny_autoencoder() -> AESOPAutoEncoder:
    """A small AE standing in for a pretrained one.

    At their usual initialisation scale (0.1 for the encoder convs and RRDB blocks) random
    weights map every image to nearly the same output (|psi(x) - psi(y)| ~ 1e-5); a full-scale
    Kaiming initialisation makes psi respond to its input as a trained one does.
    """
    torch.manual_seed(0)
    ae = AESOPAutoEncoder(**{k: v for k, v in TINY_AE.items() if k != 'type'})
    default_init_weights(ae, 1)
    return ae.eval()


@pytest.fixture(scope='module')
def ae_file(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp('ae') / 'tiny_ae.pth')
    torch.save({'params_ema': tiny_autoencoder().state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def gt_meta_info(paired_x4, tmp_path_factory) -> str:
    """Real-ESRGAN's meta_info file listing the HR training photos."""
    path = str(tmp_path_factory.mktemp('meta') / 'meta_info.txt')
    with open(path, 'w') as f:
        f.writelines(f'{name}\n' for name in sorted(os.listdir(paired_x4['train']['gt'])))
    return path


def batches(kind: str, paired_x4: dict, meta_info: str):
    """``STEPS`` batches of ``BATCH`` real photos from BasicSR's or Real-ESRGAN's own dataset class."""
    torch.manual_seed(0)
    if kind.startswith('paired'):
        opt = dict(name='photos', type='PairedImageDataset', phase='train', scale=4, io_backend={'type': 'disk'},
                   dataroot_gt=paired_x4['train']['gt'], dataroot_lq=paired_x4['train']['lq'],
                   filename_tmpl='{}', gt_size=int(kind[len('paired'):]), use_hflip=True, use_rot=True)
    else:
        opt = dict(name='photos', type=kind, phase='train', io_backend={'type': 'disk'},
                   dataroot_gt=paired_x4['train']['gt'], meta_info=meta_info, use_hflip=True, use_rot=False,
                   **REAL_KERNELS)
    dataset = DATASET_REGISTRY.get(opt['type'])(opt)
    loader = iter(DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0, drop_last=True))
    for _ in range(STEPS):
        data = next(loader)
        if 'kernel1' in data:
            # The dataset pads every photo to 400 px (reflection); the degradations then cost
            # seconds per step on a CPU. Keep the 128-px photo itself, kernels unchanged.
            data['gt'] = data['gt'][..., :128, :128].contiguous()
        yield data


def model_options(model_type: str, ae_file: str) -> dict:
    network_g, network_d, extra, _, _ = CASES[model_type]
    train = {
        'ema_decay': 0.999 if network_d else 0,
        'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
        'total_iter': STEPS,
        'warmup_iter': -1,
        'pixel_opt': {'type': 'AESOPLoss', 'loss_weight': LOSS_WEIGHT, 'criterion': 'l1', 'reduction': 'mean',
                      'autoencoder': TINY_AE, 'pretrain_network_ae': ae_file, 'param_key_ae': 'params_ema'},
    }
    opt = {'name': f'dropin_{model_type}', 'model_type': model_type, 'scale': 4, 'num_gpu': 0, 'is_train': True,
           'dist': False, 'rank': 0, 'world_size': 1, 'network_g': network_g,
           'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None}, 'train': train}
    if network_d:
        opt['network_d'] = network_d
        train.update(optim_d={'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]}, gan_opt=GAN_OPT, net_d_iters=1,
                     net_d_init_iters=0)
    opt.update(extra)
    return copy.deepcopy(opt)


def pixel_loss_target(model) -> torch.Tensor:
    """The GT the model handed to its pixel loss (Real-ESRGAN may use the USM-sharpened GT)."""
    if model.opt.get('l1_gt_usm'):
        return model.gt_usm
    return model.gt


@pytest.fixture
def cuda_is_cpu(monkeypatch):
    """Let Real-ESRGAN's degradation pipeline run on a CPU-only host, for this test only.

    Its models call ``.cuda()`` directly: make that a no-op. And DiffJPEG returns a tensor with
    channels-last strides; on CUDA, reflect padding turns it contiguous (seen with torch 2.11 on
    an H200), on the CPU it keeps the strides and BasicSR's ``filter2D`` fails in ``.view()``:
    hand the CPU the layout CUDA would give.
    """
    if torch.cuda.is_available():
        return
    monkeypatch.setattr(torch.Tensor, 'cuda', lambda self, *args, **kwargs: self)
    jpeg_forward = DiffJPEG.forward
    monkeypatch.setattr(DiffJPEG, 'forward', lambda self, x, quality: jpeg_forward(self, x, quality).contiguous())


@pytest.mark.parametrize('model_type', list(CASES))
def test_model_trains_with_aesop_as_pixel_loss(model_type, ae_file, paired_x4, gt_meta_info, request):
    if model_type.startswith('Real'):
        request.getfixturevalue('cuda_is_cpu')
    set_random_seed(0)  # Real-ESRGAN draws its degradations from random, numpy and torch
    model = build_model(model_options(model_type, ae_file))
    loss = model.cri_pix
    assert type(loss) is AESOPLoss
    ae = loss.autoencoder
    on_disk = torch.load(ae_file, map_location='cpu', weights_only=True)['params_ema']
    g_before = {k: v.clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}

    reference = tiny_autoencoder()  # an independent copy of the AE, for the loss by hand
    log_key = CASES[model_type][4]
    for step, data in enumerate(batches(CASES[model_type][3], paired_x4, gt_meta_info), start=1):
        model.feed_data(data)
        model.optimize_parameters(step)
        logged = model.get_current_log()[log_key]
        assert math.isfinite(logged) and logged > 0, (step, logged)
        with torch.no_grad():
            by_hand = LOSS_WEIGHT * (reference(model.output) - reference(pixel_loss_target(model))).abs().mean()
        assert logged == pytest.approx(by_hand.item(), rel=1e-4), (step, logged, by_hand.item())

    # the generator learned
    g_after = model.get_bare_model(model.net_g).state_dict()
    assert any(not torch.equal(g_before[k], g_after[k]) for k in g_before)
    # the auto-encoder did not: bit-identical to the file, no gradients, in no optimizer
    ae_state = ae.state_dict()
    assert set(ae_state) == set(on_disk)
    assert all(torch.equal(ae_state[k], on_disk[k]) for k in on_disk)
    assert all(not p.requires_grad and p.grad is None for p in ae.parameters())
    optimized = {id(p) for o in model.optimizers for group in o.param_groups for p in group['params']}
    assert optimized and not optimized & {id(p) for p in loss.parameters()}
    # gradients of the loss reach the generator through the frozen auto-encoder, and stop there
    net_g = model.get_bare_model(model.net_g)
    net_g.zero_grad(set_to_none=True)
    loss(model.net_g(model.lq), pixel_loss_target(model)).backward()
    assert all(p.grad is not None for p in net_g.parameters())
    assert any(p.grad.abs().sum() > 0 for p in net_g.parameters())
    assert all(p.grad is None for p in ae.parameters())
    # and it stays in eval mode, even when the model (or the loss) is switched to training mode
    model.net_g.train()
    loss.train()
    assert not any(m.training for m in ae.modules())
