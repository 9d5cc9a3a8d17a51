"""ESRGANLDLModel: ESRGANModel plus LDL's artifact term, trained through BasicSR's real train_pipeline."""
import glob
import os
import re
from os import path as osp

import pytest
import torch
import yaml
from basicsr.archs.arch_util import default_init_weights
from basicsr.losses.loss_util import get_refined_artifact_map
from basicsr.models import build_model

from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from aesop_basicsr.models.esrgan_ldl_model import ldl_artifact_loss
from conftest import run_module

TINY_G = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}
TINY_D = {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 8, 'input_size': 128}
L1 = {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
TINY_AE = {'type': 'AESOPAutoEncoder', 'scale': 4, 'num_feat': 16, 'num_grow_ch': 4, 'num_block': 1,
           'decoder': dict(TINY_G, scale=4)}


def train_opt(**overrides) -> dict:
    opt = {
        'ema_decay': 0.999,
        'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'optim_d': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
        'total_iter': 3,
        'warmup_iter': -1,
        'pixel_opt': dict(L1),
        'ldl_opt': dict(L1),
        'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                    'loss_weight': 5e-3},
        'net_d_iters': 1,
        'net_d_init_iters': 0,
    }
    opt.update(overrides)
    return opt


def model_opt(model_type: str = 'ESRGANLDLModel', **train_overrides) -> dict:
    """In-process options for build_model (no data, no experiment folders)."""
    return {'name': 'ldl_in_process', 'model_type': model_type, 'scale': 4, 'num_gpu': 0, 'dist': False, 'rank': 0,
            'world_size': 1, 'is_train': True, 'network_g': dict(TINY_G, scale=4), 'network_d': dict(TINY_D),
            'path': {'pretrain_network_g': None, 'pretrain_network_d': None},
            'train': train_opt(**train_overrides)}


def build(model_type: str = 'ESRGANLDLModel', seed: int = 0, **train_overrides):
    torch.manual_seed(seed)
    return build_model(model_opt(model_type, **train_overrides))


def artifact_batch(model, seed: int = 0) -> dict:
    """An LR batch and a GT equal to the model's output minus a checkerboard (an artifact) in one 16x16 patch."""
    torch.manual_seed(seed)
    lq = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        output = model.net_g(lq)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2. - 1.
    artifact = torch.zeros_like(output)
    artifact[:, :, 40:56, 40:56] = 0.2 * checker
    return {'lq': lq, 'gt': output - artifact, 'artifact': artifact, 'output': output}


def test_ldl_term_is_zero_when_output_equals_ema_output_equals_gt():
    model = build()
    batch = artifact_batch(model)
    model.feed_data({'lq': batch['lq'], 'gt': batch['output']})  # gt == net_g(lq) == net_g_ema(lq)
    model.optimize_parameters(1)
    assert model.log_dict['l_g_ldl'] == 0.
    assert model.log_dict['l_g_pix'] == 0.


def test_ldl_term_is_positive_on_artifacts_and_logged_apart_from_the_pixel_loss():
    model = build()
    batch = artifact_batch(model)
    model.feed_data(batch)
    model.optimize_parameters(1)
    log = model.log_dict
    assert log['l_g_ldl'] > 0
    # l_g_pix is the pixel loss alone, not pixel + LDL
    assert log['l_g_pix'] == pytest.approx(batch['artifact'].abs().mean().item(), rel=1e-5)
    assert list(log)[:2] == ['l_g_pix', 'l_g_ldl']
    assert {'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'} <= set(log)


def test_artifact_map_is_zero_where_the_ema_generator_is_further_from_gt():
    """LDL's refinement: an artifact that the EMA model has worse than the current model is not penalised."""
    gt = torch.rand(1, 3, 32, 32)
    noise = torch.randn(1, 3, 32, 32) * 0.1
    l1 = torch.nn.L1Loss()
    assert ldl_artifact_loss(l1, gt + noise, gt, output_ema=gt + 2 * noise).item() == 0.
    assert ldl_artifact_loss(l1, gt + noise, gt, output_ema=gt).item() > 0.


def perturb_ema_generator(model, seed: int = 1, amount: float = 0.05) -> None:
    """Make the EMA generator differ from the current one, as it does after a few iterations of training."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.net_g_ema.parameters():
            p.add_(amount * p.abs().mean() * torch.randn_like(p))


def ldl_by_hand(gt, output, output_ema, weight: float = 1.0) -> torch.Tensor:
    """LDL's term in float64: L1(M * output, M * gt), M = BasicSR's refined artifact map, window 7."""
    gt, output, output_ema = gt.double(), output.double(), output_ema.double()
    artifact_map = get_refined_artifact_map(gt, output, output_ema, 7)
    return weight * (artifact_map * output - artifact_map * gt).abs().mean()


def test_logged_ldl_term_uses_the_ema_generators_output_and_window_7():
    """l_g_ldl = L1(M * out, M * gt) with M from the EMA generator, which differs from the current one.

    With output_ema = out the refinement zeroes nothing, so that value differs: a model that built M
    from net_g (or with another window) logs a different number.
    """
    model = build(ldl_opt=dict(L1, loss_weight=0.7))
    perturb_ema_generator(model)
    batch = artifact_batch(model)
    with torch.no_grad():
        output, output_ema = model.net_g(batch['lq']), model.net_g_ema(batch['lq'])
    assert not torch.allclose(output, output_ema, atol=1e-3)
    expected = ldl_by_hand(batch['gt'], output, output_ema, 0.7).item()
    unrefined = ldl_by_hand(batch['gt'], output, output, 0.7).item()
    assert expected > 0 and abs(unrefined - expected) > 0.02 * expected

    model.feed_data({'lq': batch['lq'], 'gt': batch['gt']})
    model.optimize_parameters(1)
    assert model.log_dict['l_g_ldl'] == pytest.approx(expected, rel=1e-5)
    assert model.log_dict['l_g_pix'] == pytest.approx((output - batch['gt']).abs().mean().item(), rel=1e-5)


@pytest.fixture(scope='module')
def signal_ae_file(tmp_path_factory) -> str:
    """A tiny AE at full-scale (Kaiming, scale 1) initialisation: psi responds to its input like a trained one."""
    torch.manual_seed(0)
    ae = AESOPAutoEncoder(**{k: v for k, v in TINY_AE.items() if k != 'type'})
    default_init_weights(ae, 1)
    path = str(tmp_path_factory.mktemp('ae') / 'tiny_ae.pth')
    torch.save({'params_ema': ae.state_dict()}, path)
    return path


def test_esrgan_ldl_with_aesop_logs_aesop_and_ldl_computed_by_hand(signal_ae_file):
    """The paper's main setup: ESRGAN + LDL with AESOPLoss as pixel_opt; both logged values by hand."""
    aesop_opt = {'type': 'AESOPLoss', 'loss_weight': 0.5, 'criterion': 'l1', 'autoencoder': TINY_AE,
                 'pretrain_network_ae': signal_ae_file, 'param_key_ae': 'params_ema'}
    model = build(pixel_opt=aesop_opt)
    perturb_ema_generator(model)
    batch = artifact_batch(model)
    reference = AESOPAutoEncoder(**{k: v for k, v in TINY_AE.items() if k != 'type'}).eval()
    reference.load_state_dict(torch.load(signal_ae_file, weights_only=True)['params_ema'])
    with torch.no_grad():
        output, output_ema = model.net_g(batch['lq']), model.net_g_ema(batch['lq'])
        aesop = 0.5 * (reference(output).double() - reference(batch['gt']).double()).abs().mean().item()
        l1 = (output - batch['gt']).abs().mean().item()
    ldl = ldl_by_hand(batch['gt'], output, output_ema).item()
    assert abs(aesop - 0.5 * l1) > 0.05 * aesop  # AESOP is not L1 in disguise here

    model.feed_data({'lq': batch['lq'], 'gt': batch['gt']})
    model.optimize_parameters(1)
    assert model.log_dict['l_g_pix'] == pytest.approx(aesop, rel=1e-4)
    assert model.log_dict['l_g_ldl'] == pytest.approx(ldl, rel=1e-5)


def test_everything_but_the_ldl_term_is_esrgan():
    """With the LDL weight 0, one step changes the generator and discriminator exactly as ESRGANModel does."""
    esrgan = build('ESRGANModel', ldl_opt=None)
    ldl_off = build(ldl_opt=dict(L1, loss_weight=0.))
    no_ldl_opt = build(ldl_opt=None)  # ESRGANLDLModel without ldl_opt is ESRGANModel
    ldl_on = build()
    batch = artifact_batch(esrgan)
    for model in (esrgan, ldl_off, no_ldl_opt, ldl_on):
        model.feed_data(batch)
        model.optimize_parameters(1)
    for other in (ldl_off, no_ldl_opt):
        for name in ('net_g', 'net_d', 'net_g_ema'):
            expected, got = getattr(esrgan, name).state_dict(), getattr(other, name).state_dict()
            for key in expected:
                assert torch.equal(expected[key], got[key]), f'{name}.{key}'
    assert {k: v for k, v in ldl_off.log_dict.items() if k != 'l_g_ldl'} == esrgan.log_dict
    assert no_ldl_opt.log_dict == esrgan.log_dict
    # and with weight 1 the LDL term does reach the generator's update
    assert not all(torch.equal(a, b) for a, b in zip(esrgan.net_g.parameters(), ldl_on.net_g.parameters()))


def test_without_pixel_and_ldl_terms_it_steps_as_esrgan():
    """No pixel_opt and no ldl_opt (a GAN-only generator loss, which BasicSR 1.4.2 allows): cri_pix is None, and one
    step is ESRGANModel's."""
    esrgan = build('ESRGANModel', pixel_opt=None, ldl_opt=None)
    model = build(pixel_opt=None, ldl_opt=None)
    assert model.cri_pix is None
    batch = artifact_batch(esrgan)
    for m in (esrgan, model):
        m.feed_data(batch)
        m.optimize_parameters(1)
    for name in ('net_g', 'net_d'):
        expected, got = getattr(esrgan, name).state_dict(), getattr(model, name).state_dict()
        assert all(torch.equal(expected[key], got[key]) for key in expected), name
    assert model.log_dict == esrgan.log_dict and 'l_g_pix' not in model.log_dict


def test_swinir_generator_trains_with_the_vgg_discriminator():
    """BasicSR's SwinIR returns a channels-last SR image on current PyTorch (its patch un-embedding is a
    transpose); BasicSR's VGGStyleDiscriminator's .view() fails on that. The model hands it a contiguous one: a
    step runs, and the discriminator's output equals that on the contiguous copy."""
    opt = model_opt()
    opt['network_g'] = {'type': 'SwinIR', 'upscale': 4, 'in_chans': 3, 'img_size': 32, 'window_size': 8,
                        'img_range': 1., 'depths': [1], 'embed_dim': 12, 'num_heads': [2], 'mlp_ratio': 1,
                        'upsampler': 'pixelshuffle', 'resi_connection': '1conv'}
    torch.manual_seed(0)
    model = build_model(opt)
    lq = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        sr = model.net_g(lq)
        assert not sr.is_contiguous()  # the situation this is about
        assert torch.equal(model.net_d(sr), model.net_d(sr.contiguous()))
    model.feed_data({'lq': lq, 'gt': torch.rand(2, 3, 128, 128)})
    model.optimize_parameters(1)
    assert 'l_d_fake' in model.get_current_log()


def test_ldl_without_ema_decay_is_a_clear_error():
    with pytest.raises(ValueError, match=r'train:ldl_opt .*train:ema_decay is 0;'):
        build(ema_decay=0)
    opt = model_opt()
    del opt['train']['ema_decay']
    with pytest.raises(ValueError, match='train:ema_decay is None'):
        build_model(opt)
    build('ESRGANLDLModel', ema_decay=0, ldl_opt=None)  # without ldl_opt it is plain ESRGAN, EMA optional


def write_options(root: str, paired: dict, total_iter: int) -> str:
    opt = {
        'name': 'esrgan_ldl_tiny', 'model_type': 'ESRGANLDLModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'train', 'type': 'PairedImageDataset', 'dataroot_gt': paired['train']['gt'],
                      'dataroot_lq': paired['train']['lq'], 'io_backend': {'type': 'disk'}, 'gt_size': 128,
                      'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                      'dataset_enlarge_ratio': 1, 'prefetch_mode': None},
            'val': {'name': 'val', 'type': 'PairedImageDataset', 'dataroot_gt': paired['val']['gt'],
                    'dataroot_lq': paired['val']['lq'], 'io_backend': {'type': 'disk'}},
        },
        'network_g': dict(TINY_G), 'network_d': dict(TINY_D),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': train_opt(
            total_iter=total_iter,
            perceptual_opt={'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1},
                            'vgg_type': 'vgg19', 'use_input_norm': True, 'range_norm': False,
                            'perceptual_weight': 1.0, 'style_weight': 0, 'criterion': 'l1'}),
        'val': {'val_freq': total_iter, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False,
                   'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }
    path = osp.join(root, 'esrgan_ldl_tiny.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def logged(log_text: str, key: str) -> list:
    return [float(v) for v in re.findall(rf'{key}: (-?[0-9.]+(?:e[-+][0-9]+)?)', log_text)]


def test_trains_and_resumes_through_basicsr_train_pipeline(tmp_path, paired_x4, stand_in_vgg19):
    opt_file = write_options(str(tmp_path), paired_x4, total_iter=2)
    run_module('aesop_basicsr.train', '-opt', opt_file, cwd=str(tmp_path))
    exp = tmp_path / 'experiments' / 'esrgan_ldl_tiny'
    log_text = open(glob.glob(str(exp / 'train_*.log'))[0]).read()
    ldl = logged(log_text, 'l_g_ldl')
    assert len(ldl) == 2 and ldl[0] > 0  # iter 1: EMA == current generator, the map is not zeroed
    for key in ('l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d_real', 'l_d_fake'):
        assert len(logged(log_text, key)) == 2, key
    assert 'Validation val' in log_text
    saved = torch.load(str(exp / 'models' / 'net_g_2.pth'), map_location='cpu', weights_only=True)
    assert set(saved) == {'params', 'params_ema'}
    assert os.path.isfile(exp / 'models' / 'net_d_2.pth') and os.path.isfile(exp / 'training_states' / '2.state')

    # resume from the saved state and train on to iteration 3
    run_module('aesop_basicsr.train', '-opt', opt_file, '--auto_resume', '--force_yml', 'train:total_iter=3',
               cwd=str(tmp_path))
    resumed = max(glob.glob(str(exp / 'train_*.log')), key=os.path.getmtime)
    resumed_text = open(resumed).read()
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', resumed_text)
    assert len(logged(resumed_text, 'l_g_ldl')) == 1
    assert os.path.isfile(exp / 'models' / 'net_g_3.pth')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_one_step_on_cuda():
    opt = model_opt()
    opt['num_gpu'] = 1
    torch.manual_seed(0)
    model = build_model(opt)
    assert next(model.net_g.parameters()).is_cuda and next(model.net_g_ema.parameters()).is_cuda
    cpu_model = build()
    batch = artifact_batch(cpu_model)
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert model.log_dict['l_g_ldl'] > 0
    assert model.log_dict['l_g_pix'] == pytest.approx(batch['artifact'].abs().mean().item(), rel=1e-3)
