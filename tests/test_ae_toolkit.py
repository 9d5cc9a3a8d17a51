"""The auto-encoder toolkit: the x2/x8 AE recipes, the report card (aesop-inspect --report), the blur measure.

Frequency-response checks compare with closed forms computed here in float64: the transfer functions
of a box average and of Keys' antialiased bicubic (a = -0.5), |sum_t w_t exp(-2 pi i f t)|.
"""
import csv
import json
import os
from collections import OrderedDict
from copy import deepcopy
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr, calculate_ssim

from aesop_basicsr import inspect_loss
from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.metrics.hf_energy_metric import calculate_hf_energy_ratio
from aesop_basicsr.report_card.card import response_verdict
from aesop_basicsr.report_card.frequency_response import FrequencyResponse, lr_nyquist, measure_frequency_response
from aesop_basicsr.utils.checkpoint import load_pretrained
from aesop_basicsr.utils.panels import to_tensor
from aesop_basicsr.utils.sample_data import bicubic_downscale, load_photo, matlab_bicubic_resize, write_paired_dataset
from conftest import REPO_ROOT, run_module  # noqa: F401
from test_option_files import load, resolve, typed_blocks

# file -> (scale, released decoder file)
RECIPES = {
    'options/train/AESOP/train_AE_SwinIRdecoder_x2_DF2K.yml': (2, '001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth'),
    'options/train/AESOP/train_AE_SwinIRdecoder_x8_DF2K.yml': (8, '001_classicalSR_DF2K_s64w8_SwinIR-M_x8.pth'),
    'options/train/AESOP/train_AE_EDSRdecoder_x2_DF2K.yml': (2, 'EDSR_Mx2_f64b16_DIV2K_official-3ba7b086.pth'),
}
DECODER_PARAMS = {'SwinIR': 11e6, 'EDSR': 1.3e6}  # at least: the released sizes, not reduced ones
X4_RECIPE = 'options/train/AESOP/train_AE_RRDBdecoder_x4_DF2K.yml'
# measured |H(f)| of the fixed encoders vs the closed form: the box matches to float precision; torch's
# antialiased bicubic differs from Keys' kernel by < 0.004 (its weights are computed in float32)
FIXED_ENCODER_TOL = 0.01
# fp32 error of the tiny AE's output against float64, in grey levels (measured: < 1e-3; CPUs differ by ~1e-4)
FP32_GREY_LEVELS = 0.01


def crops_of(names, size):
    return [to_tensor(load_photo(n)[100:100 + size, 100:100 + size]) for n in names]


# ------------------------------------------------------------------ x2 / x8 recipes

@pytest.mark.parametrize('recipe', sorted(RECIPES))
def test_recipe_parses_resolves_and_keeps_the_papers_synthetic_losses(recipe):
    scale, released = RECIPES[recipe]
    opt = load(osp.join(REPO_ROOT, recipe))
    x4 = load(osp.join(REPO_ROOT, X4_RECIPE))
    assert opt['model_type'] == 'AESOPAEModel' and opt['scale'] == scale
    for kind, key, block in typed_blocks(opt):
        resolve(kind, block['type'])
    net = opt['network_g']
    assert net['scale'] == net['decoder']['upscale'] == scale and net['encoder_type'] == 'rrdb'
    assert net['num_feat'] // scale**2 >= 3, 'the encoder stem must carry every colour direction'
    assert opt['datasets']['train']['gt_size'] // scale == 64  # the paper's x4 LR patch (256 / 4)
    # the same training settings and loss terms as the x4 synthetic recipe: L1(psi(HR), HR) + 1.0 L1(E(HR), LR)
    assert opt['train'] == x4['train']
    assert opt['train']['pixel_opt']['type'] == opt['train']['lr_opt']['type'] == 'L1Loss'
    assert all(m['crop_border'] == scale for m in opt['val']['metrics'].values())
    assert opt['path']['param_key_decoder'] == 'params'
    assert released in opt['path']['pretrain_network_decoder']


@pytest.mark.parametrize('recipe', sorted(RECIPES))
def test_recipe_builds_at_full_size_and_its_decoder_takes_the_released_layout(recipe, tmp_path):
    """The released SwinIR classical-SR and BasicSR-zoo EDSR files are {'params': state dict}. BasicSR's SwinIR
    has the official keys (checked offline against JingyunLiang/SwinIR's network_swinir.py: the same 548/552
    tensors, identical outputs); the zoo's EDSR files are converted for BasicSR's EDSR arch."""
    scale, released = RECIPES[recipe]
    opt = load(osp.join(REPO_ROOT, recipe))
    torch.manual_seed(0)
    ae = build_network(deepcopy(opt['network_g'])).eval()
    decoder_opt = dict(opt['network_g']['decoder'])
    assert sum(p.numel() for p in ae.decoder.parameters()) > DECODER_PARAMS[decoder_opt['type']]
    stand_in = build_network(decoder_opt)
    path = str(tmp_path / released)
    torch.save({'params': stand_in.state_dict()}, path)
    load_pretrained(ae.decoder, path, opt['path']['param_key_decoder'], True, 'pretrain_network_decoder',
                    'param_key_decoder')
    x = torch.rand(1, 3, 8 * scale, 8 * scale)
    with torch.no_grad():
        assert ae.encode(x).shape == (1, 3, 8, 8)
        assert ae(x).shape == x.shape
        assert torch.equal(ae.decode(ae.encode(x)), stand_in.eval()(ae.encode(x)))


TINY_SWINIR = dict(type='SwinIR', in_chans=3, img_size=16, window_size=4, img_range=1.0, depths=[1], embed_dim=12,
                   num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv')


@pytest.mark.parametrize('scale', [2, 8])
def test_reduced_recipe_trains_end_to_end(scale, tmp_path):
    """The shipped SwinIR recipe with a tiny encoder and SwinIR, real photos at x{scale}, through train_pipeline."""
    data = {split: write_paired_dataset(str(tmp_path / split), scale, 16 * scale, names)
            for split, names in (('train', ('astronaut', 'rocket')), ('val', ('coffee', )))}
    torch.manual_seed(0)
    decoder = dict(TINY_SWINIR, upscale=scale)
    ckpt = str(tmp_path / 'tiny_swinir.pth')
    torch.save({'params': build_network(dict(decoder)).state_dict()}, ckpt)
    opt = load(osp.join(REPO_ROOT, f'options/train/AESOP/train_AE_SwinIRdecoder_x{scale}_DF2K.yml'))
    opt['name'] = f'reduced_x{scale}'
    opt['num_gpu'] = 0
    opt['network_g'].update(num_feat=min(3 * scale**2, 64), num_grow_ch=4, num_block=1, decoder=decoder)
    opt['datasets']['train'].update(dataroot_gt=data['train']['gt'], dataroot_lq=data['train']['lq'],
                                    gt_size=8 * scale, num_worker_per_gpu=0, batch_size_per_gpu=2)
    opt['datasets']['val'].update(dataroot_gt=data['val']['gt'], dataroot_lq=data['val']['lq'])
    opt['path']['pretrain_network_decoder'] = ckpt
    opt['train']['total_iter'] = 2
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    opt_file = tmp_path / 'reduced.yml'
    opt_file.write_text(yaml.safe_dump(json.loads(json.dumps(opt))))
    run_module('aesop_basicsr.train', '-opt', str(opt_file), cwd=str(tmp_path))
    exp = tmp_path / 'experiments' / opt['name']
    log = ''.join(p.read_text() for p in exp.glob('train_*.log'))
    assert ckpt in log  # the decoder was initialised from the SwinIR checkpoint
    assert len([line for line in log.splitlines() if 'l_pix:' in line and 'l_lr:' in line]) == 2, log[-2000:]
    assert '# psnr:' in log and '# psnr_lr:' in log
    saved = torch.load(exp / 'models' / 'net_g_2.pth', map_location='cpu')['params']
    assert any(k.startswith('decoder.layers.0.') for k in saved)


# ------------------------------------------------------------------ frequency response against theory

def box_theory(f, scale):
    taps = np.arange(scale)
    return np.abs(np.exp(-2j * np.pi * np.outer(f, taps)).sum(axis=1) / scale)


def bicubic_theory(f, scale):
    """Keys' cubic (a = -0.5) stretched by ``scale``, evaluated at the HR pixel centres around an LR pixel."""
    t = np.arange(-2 * scale, 2 * scale + 1)
    d = np.abs((t - (scale - 1) / 2) / scale)
    inner = 1.5 * d**3 - 2.5 * d**2 + 1
    outer = -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
    w = np.where(d <= 1, inner, np.where(d < 2, outer, 0.0))
    w /= w.sum()
    return np.abs(np.exp(-2j * np.pi * np.outer(f, t)) @ w)


@pytest.mark.parametrize('encoder_type, theory', [('area', box_theory), ('bicubic', bicubic_theory)])
@pytest.mark.parametrize('scale', [2, 4])
def test_fixed_encoder_response_is_the_downsamplers_transfer_function(encoder_type, theory, scale):
    ae = build_network(dict(type='AESOPAutoEncoder', scale=scale, encoder_type=encoder_type,
                            decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=4, num_block=1,
                                         num_grow_ch=4, scale=scale))).eval()
    response = measure_frequency_response(ae, crops_of(('astronaut', 'coffee'), 64))
    expected = theory(response.frequencies, scale)
    assert np.abs(response.encoder_gain - expected).max() < FIXED_ENCODER_TOL
    assert np.abs(response.reference['gain'] - expected).max() < FIXED_ENCODER_TOL  # the plot's dashed curve
    # L1 of a sinusoid, per unit amplitude: mean |sin| = 2 / pi at every frequency
    np.testing.assert_allclose(response.l1, 2 / np.pi, atol=0.01)


TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_feat=48, num_grow_ch=4, num_block=1, encoder_type='rrdb',
               decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                            scale=4))


@pytest.fixture(scope='module')
def trained_ae(tmp_path_factory):
    """A tiny AE trained briefly with the paper's loss, L1(psi(HR), HR) + L1(E(HR), LR), on real photos;
    saved as AESOPAEModel saves it ({'params', 'params_ema'})."""
    torch.manual_seed(0)
    ae = build_network(dict(TINY_AE))
    hr, lr = [], []
    for name in ('astronaut', 'rocket', 'immunohistochemistry', 'camera'):
        photo = load_photo(name)
        for i in range(4):
            crop = photo[64 * i:64 * i + 192, 32 * i:32 * i + 192]
            hr.append(to_tensor(crop))
            lr.append(to_tensor(bicubic_downscale(crop, 4)))
    hr, lr = torch.cat(hr), torch.cat(lr)
    optimizer = torch.optim.Adam(ae.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(250):
        idx = torch.randint(0, len(hr), (4, ), generator=g)
        y, x = (int(v) // 4 * 4 for v in torch.randint(0, 192 - 32 + 1, (2, ), generator=g))
        z = ae.encode(hr[idx, :, y:y + 32, x:x + 32])
        loss = (ae.decode(z) - hr[idx, :, y:y + 32, x:x + 32]).abs().mean() + \
            (z - lr[idx, :, y // 4:y // 4 + 8, x // 4:x // 4 + 8]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    ae.eval()
    root = tmp_path_factory.mktemp('trained_ae')
    ckpt = str(root / 'net_g_latest.pth')
    torch.save({'params': ae.state_dict(), 'params_ema': ae.state_dict()}, ckpt)
    opt_file = str(root / 'ae.yml')
    with open(opt_file, 'w') as f:
        yaml.safe_dump({'name': 'tiny_ae', 'model_type': 'AESOPAEModel', 'network_g': TINY_AE}, f)
    return {'ae': ae, 'ckpt': ckpt, 'opt': opt_file, 'root': root}


def test_trained_autoencoder_responds_like_l1_below_lr_nyquist_and_falls_above(trained_ae):
    # bounds that hold wherever the tiny AE's training ends: over seeds 0-5, with AVX-512 and AVX2 kernels,
    # below 0.78-1.01, above 0.05-0.14, near the HR Nyquist frequency <= 0.05
    response = measure_frequency_response(trained_ae['ae'], crops_of(('coffee', 'chelsea'), 64))
    assert response.band_mean('below') > 0.6
    assert response.band_mean('above') < 0.25
    assert response.relative[-3:].max() < 0.2  # near the HR Nyquist frequency: almost ignored


def test_aesop_curve_is_aesop_loss_of_the_perturbed_image(trained_ae):
    crop = crops_of(('coffee', ), 64)[0]
    cycles, phase, amplitude = 5, 0.7, 0.02
    response = measure_frequency_response(trained_ae['ae'], [crop], cycles=[cycles], phase=phase,
                                          amplitude=amplitude)
    loss = AESOPLoss(TINY_AE, pretrain_network_ae=trained_ae['ckpt'], param_key_ae='params_ema')
    wave = np.sin(2 * np.pi * cycles * np.arange(64) / 64 + phase)
    expected = []
    for h in (np.tile(wave, (64, 1)), np.tile(wave[:, None], (1, 64))):  # horizontal, vertical
        perturbed = crop + amplitude * torch.from_numpy(h).float()
        with torch.no_grad():
            expected.append(float(loss(perturbed, crop)) / amplitude)
    assert response.aesop[0] == pytest.approx(np.mean(expected), rel=1e-4)
    assert response.l1[0] == pytest.approx(np.abs(wave).mean(), rel=1e-4)


# ------------------------------------------------------------------ aesop-inspect --report

def released_layout(state):
    """Our state dict in the authors' layout: every encoder tensor twice (conv_first/encoder.0, ...)."""
    out = OrderedDict(state)
    for ours, theirs in (('conv_first.', 'encoder.0.'), ('body.', 'encoder.2.'), ('conv_last.', 'encoder.3.')):
        out.update((theirs + k[len(ours):], v) for k, v in state.items() if k.startswith(ours))
    return out


@pytest.fixture(scope='module')
def card(trained_ae, paired_x4, tmp_path_factory):
    out = tmp_path_factory.mktemp('card') / 'report'
    inspect_loss.main(['--ae', trained_ae['ckpt'], '--ae-opt', trained_ae['opt'], '--report', str(out), '--images',
                       paired_x4['val']['gt'], '--crop', '64'])
    with open(out / 'report.json') as f:
        return {'dir': out, 'report': json.load(f)}


def test_card_figures_are_basicsr_psnr_of_the_saved_images(card, trained_ae, paired_x4):
    report, images = card['report'], card['dir'] / 'images'
    with open(card['dir'] / 'per_image.csv') as f:
        rows = {r['image']: r for r in csv.DictReader(f)}
    assert set(rows) == set(report['per_image']) | {'mean'} and len(report['per_image']) == 2
    for stem, scores in report['per_image'].items():
        hr = cv2.imread(osp.join(paired_x4['val']['gt'], f'{stem}.png'))
        ae_img = cv2.imread(str(images / f'{stem}_ae.png'))
        code = cv2.imread(str(images / f'{stem}_code.png'))
        # the saved psi(HR) is the network's output, quantised as BasicSR's validation does (tensor2img: clamp
        # to [0, 1], x255, round, RGB -> BGR), checked against the network in float64: fp32 kernels differ from
        # one CPU to another by ~1e-6, which can move a value sitting on a rounding boundary by one grey level
        with torch.no_grad():
            psi64 = deepcopy(trained_ae['ae']).double()(to_tensor(hr).double())
        exact = psi64.clamp(0, 1)[0].permute(1, 2, 0).flip(-1).numpy() * 255  # HWC, BGR, before rounding
        assert np.abs(ae_img - exact).max() <= 0.5 + FP32_GREY_LEVELS
        # the LR reference is the dataset's MATLAB-bicubic LR
        np.testing.assert_array_equal(cv2.imread(str(images / f'{stem}_lr_bicubic.png')),
                                      cv2.imread(osp.join(paired_x4['val']['lq'], f'{stem}.png')))
        lr = cv2.imread(osp.join(paired_x4['val']['lq'], f'{stem}.png'))
        assert scores['recon_psnr'] == pytest.approx(calculate_psnr(ae_img, hr, 4, test_y_channel=True), abs=1e-9)
        assert scores['recon_ssim'] == pytest.approx(calculate_ssim(ae_img, hr, 4, test_y_channel=True), abs=1e-9)
        assert scores['code_psnr'] == pytest.approx(calculate_psnr(code, lr, 1, test_y_channel=True), abs=1e-9)
        assert float(rows[stem]['recon_psnr']) == pytest.approx(scores['recon_psnr'], abs=1e-5)
    mean = np.mean([s['code_psnr'] for s in report['per_image'].values()])
    assert report['mean']['code_psnr'] == pytest.approx(mean)
    assert report['mean']['recon_psnr'] > 13  # trained: 17-19 dB on each CPU tried, an untrained AE about 8 dB


def test_card_writes_verdicts_plot_and_frequency_table(card):
    report, out = card['report'], card['dir']
    assert set(report['verdicts']) == {'recon_psnr', 'code_psnr', 'frequency_response', 'encoder_gain'}
    # the verdict is the one for the card's own figures (which one depends on where a tiny AE's training ends)
    sweep = report['frequency_response']
    rows, nyquist = sweep['rows'], sweep['lr_nyquist']
    below = np.mean([r['aesop'] / r['l1'] for r in rows if r['frequency'] <= 0.8 * nyquist])
    above = [r['aesop'] / r['l1'] for r in rows if r['frequency'] >= 1.25 * nyquist]
    assert sweep['aesop_over_l1_below'] == pytest.approx(below) and sweep['aesop_over_l1_above'] == pytest.approx(
        np.mean(above))
    verdict = report['verdicts']['frequency_response']
    assert verdict.startswith(f'AESOP responds at {below:.2f} x L1 below the LR Nyquist frequency ({nyquist:.3f} '
                              f'cycles/px) and {np.mean(above):.2f} x L1 above it (at most {max(above):.2f}, at ')
    good = bool(below >= 0.7 and np.mean(above) <= 0.3 and max(above) <= 0.4)
    assert verdict.endswith('little of the detail it does not.') is good
    assert ('weak below' in verdict) is bool(below < 0.7)
    assert ('leaks above' in verdict) is bool(np.mean(above) > 0.3 or max(above) > 0.4)
    plot = cv2.imread(str(out / 'frequency_response.png'))
    assert plot is not None and plot.shape[0] > 200 and plot.shape[1] > 400
    with open(out / 'frequency_response.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(report['frequency_response']['rows']) >= 10
    freq = [float(r['frequency']) for r in rows]
    assert freq == sorted(freq) and freq[0] < 0.125 < freq[-1] <= 0.5
    markdown = (out / 'report.md').read_text()
    for line in report['verdicts'].values():
        assert line in markdown
    assert '![frequency response](frequency_response.png)' in markdown
    # the AE's own figures are named apart from the supplement's AE-PSNR / LR-PSNR of an SR output
    assert '| image | reconstruction PSNR (dB) | reconstruction SSIM | code PSNR (dB) | bicubic PSNR (dB) |' in markdown
    assert 'AE-PSNR (dB)' not in markdown and 'LR-PSNR (dB)' not in markdown
    with open(out / 'per_image.csv') as f:
        assert next(csv.reader(f)) == ['image', 'recon_psnr', 'recon_ssim', 'code_psnr', 'bicubic_psnr']


def constructed_response(below: float, above: float, peak: float) -> FrequencyResponse:
    """A response with AESOP / L1 = ``below`` under 0.8 f_N, ``above`` over 1.25 f_N and one ``peak`` there."""
    f = np.linspace(0.02, 0.5, 25)
    nyquist = lr_nyquist(4)
    relative = np.where(f <= 0.8 * nyquist, below, np.where(f >= 1.25 * nyquist, above, 0.5))
    high = np.flatnonzero(f >= 1.25 * nyquist)
    relative[high[len(high) // 2]] = peak
    # shift the rest of the band so that its mean stays ``above``
    rest = np.setdiff1d(high, high[len(high) // 2])
    relative[rest] = (above * len(high) - peak) / len(rest)
    l1 = np.full_like(f, 2 / np.pi)
    return FrequencyResponse(4, f, l1, relative * l1, np.ones_like(f), 0.02, 1)


@pytest.mark.parametrize('below, above, peak, expected', [
    (0.95, 0.05, 0.2, ['good']),
    (0.6, 0.05, 0.2, ['weak below (< 0.7)']),
    (0.95, 0.35, 0.38, ['leaks above']),           # the band's mean
    (0.95, 0.1, 0.45, ['leaks above']),            # one frequency
    (0.5, 0.4, 0.45, ['weak below', 'leaks above']),
])
def test_frequency_verdict_follows_the_thresholds(below, above, peak, expected):
    """AEs built to have each property (the trained tiny AE's verdict depends on how its training ends)."""
    response = constructed_response(below, above, peak)
    assert response.band_mean('below') == pytest.approx(below) and response.band_mean('above') == pytest.approx(above)
    verdict = response_verdict(response)
    assert verdict.startswith(f'AESOP responds at {below:.2f} x L1 below the LR Nyquist frequency (0.125 cycles/px) '
                              f'and {above:.2f} x L1 above it (at most {peak:.2f}, at ')
    assert verdict.endswith('little of the detail it does not.') is (expected == ['good'])
    for phrase in expected:
        if phrase != 'good':
            assert phrase in verdict


def test_card_reads_the_authors_released_layout(card, trained_ae, paired_x4, tmp_path):
    state = torch.load(trained_ae['ckpt'], map_location='cpu')['params_ema']
    released = str(tmp_path / 'AE_RRDBdecoder_100K.pth')
    torch.save({'params_ema': released_layout(state)}, released)
    out = tmp_path / 'released'
    inspect_loss.main(['--ae', released, '--ae-opt', trained_ae['opt'], '--report', str(out), '--images',
                       paired_x4['val']['gt'], '--crop', '64', '--max-images', '1', '--freq-images', '1'])
    with open(out / 'report.json') as f:
        report = json.load(f)
    stem = next(iter(report['per_image']))
    assert report['per_image'][stem] == card['report']['per_image'][stem]


def test_box_encoder_ablation_card_checks_the_encoder_against_theory(paired_x4, tmp_path, capsys):
    ae_opt = dict(TINY_AE, encoder_type='area')
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'box_ae.pth')
    torch.save({'params': build_network(dict(ae_opt)).state_dict()}, ckpt)
    out = tmp_path / 'box'
    inspect_loss.main(['--ae', ckpt, '--ae-opt', json.dumps(ae_opt), '--report', str(out), '--images',
                       paired_x4['val']['gt'], '--crop', '64', '--freq-images', '1'])
    printed = capsys.readouterr().out
    with open(out / 'report.json') as f:
        report = json.load(f)
    assert report['encoder_type'] == 'area'
    assert report['verdicts']['encoder_gain'].startswith('Encoder gain matches the box average')
    assert 'Encoder gain matches the box average' in printed
    gains = [(r['encoder_gain'], r['encoder_reference']) for r in report['frequency_response']['rows']]
    assert max(abs(a - b) for a, b in gains) < 1e-4
    # with the area encoder E(HR) is the box-averaged HR image, a few dB from MATLAB bicubic
    assert 25 < report['mean']['code_psnr'] < 60


def test_report_mode_errors_name_the_flag(paired_x4, trained_ae, tmp_path):
    base = ['--ae', trained_ae['ckpt'], '--ae-opt', trained_ae['opt']]
    with pytest.raises(SystemExit):
        inspect_loss.parse_args(base + ['--report', str(tmp_path / 'r')])  # no --images
    with pytest.raises(SystemExit, match=r'--images: .*holds no images'):
        empty = tmp_path / 'empty'
        empty.mkdir()
        inspect_loss.main(base + ['--report', str(tmp_path / 'r'), '--images', str(empty)])
    with pytest.raises(SystemExit, match=r'--crop: 60 must be a multiple of 2 x scale = 8'):
        inspect_loss.main(base + ['--report', str(tmp_path / 'r'), '--images', paired_x4['val']['gt'], '--crop', '60'])


def test_single_pair_mode_still_works_beside_the_report_mode(trained_ae, paired_x4, tmp_path, capsys):
    name = sorted(os.listdir(paired_x4['val']['gt']))[0]
    hr = osp.join(paired_x4['val']['gt'], name)
    sr = str(tmp_path / 'sr.png')
    cv2.imwrite(sr, matlab_bicubic_resize(cv2.imread(osp.join(paired_x4['val']['lq'], name)), 4))
    inspect_loss.main(['--ae', trained_ae['ckpt'], '--ae-opt', trained_ae['opt'], '--sr', sr, '--hr', hr, '--out',
                       str(tmp_path / 'panel.png')])
    printed = capsys.readouterr().out
    loss = AESOPLoss(TINY_AE, pretrain_network_ae=trained_ae['ckpt'], param_key_ae='params_ema')
    with torch.no_grad():
        expected = float(loss(to_tensor(cv2.imread(sr)), to_tensor(cv2.imread(hr))))
    assert float(printed.split('AESOP')[1].split()[0]) == pytest.approx(expected, rel=1e-6)
    assert (tmp_path / 'panel.png').is_file()


# ------------------------------------------------------------------ blur measure

def test_hf_energy_ratio_is_one_for_hr_and_below_one_for_bicubic():
    hr = load_photo('astronaut')[:192, 96:288]
    assert calculate_hf_energy_ratio(hr, hr, crop_border=4, scale=4) == pytest.approx(1.0, abs=1e-12)
    bicubic = matlab_bicubic_resize(bicubic_downscale(hr, 4), 4)
    ratio = calculate_hf_energy_ratio(bicubic, hr, crop_border=4, scale=4)
    assert 0 < ratio < 0.5


def test_hf_energy_ratio_counts_only_energy_above_the_lr_nyquist_frequency():
    """Two gratings: 3/64 cycles/px (below the x4 LR Nyquist 1/8) and 20/64 (above): the ratio sees only the second."""
    x = np.arange(64)
    low = np.tile(np.sin(2 * np.pi * 3 * x / 64), (64, 1))
    high = np.tile(np.sin(2 * np.pi * 20 * x / 64), (64, 1))
    grey = lambda img: np.repeat((128 + 40 * img)[..., None], 3, axis=2)  # noqa: E731
    hr = grey(low + high)
    assert calculate_hf_energy_ratio(grey(low), hr, 0, scale=4, test_y_channel=False) < 1e-3
    assert calculate_hf_energy_ratio(grey(low + 2 * high), hr, 0, scale=4, test_y_channel=False) == \
        pytest.approx(4.0, rel=1e-2)
    assert calculate_hf_energy_ratio(grey(3 * low + high), hr, 0, scale=4, test_y_channel=False) == \
        pytest.approx(1.0, rel=2e-2)
