"""The supplement's fidelity measures of an SR output: AE-PSNR = PSNR(psi(HR), psi(SR)) (calculate_ae_psnr) and
LR-PSNR = PSNR(down(HR), down(SR)) (calculate_lr_psnr), on real photos.

References are computed here in float64 from the definitions: MATLAB's bicubic written out
(test_paper_protocol.matlab_bicubic_reference), the BT.601 Y channel, the border crop and the PSNR formula;
psi is the same auto-encoder's weights run in float64. The auto-encoders carry signal (full-scale
initialisation), so psi(SR) and psi(HR) differ as a trained AE's would.
"""
import csv

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from basicsr.archs.arch_util import default_init_weights
from basicsr.metrics import calculate_metric, calculate_psnr

from aesop_basicsr import evaluate
from aesop_basicsr.metrics.ae_psnr_metric import calculate_ae_psnr
from aesop_basicsr.metrics.lr_psnr_metric import calculate_lr_psnr
from aesop_basicsr.utils.cli import OptionError
from aesop_basicsr.utils.sample_data import load_photo
from test_paper_protocol import matlab_bicubic_reference, results_and_datasets  # noqa: F401  (a fixture)
from tiny_training import TINY_AE, TINY_DECODER, write_autoencoder

SIZE = 96
BOX_AE = dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, encoder_type='area', decoder=dict(TINY_DECODER))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def y_channel(bgr: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of a BGR image in [0, 255] units (float64): 16 + (65.481 R + 128.553 G + 24.966 B) / 255."""
    return 16. + (65.481 * bgr[..., 2] + 128.553 * bgr[..., 1] + 24.966 * bgr[..., 0]) / 255.


def psnr_y(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    a, b = y_channel(a.astype(np.float64)), y_channel(b.astype(np.float64))
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return 10 * np.log10(255.**2 / np.mean((a - b)**2))


def low_band_error(shape, seed: int = 0, amplitude: float = 12.) -> np.ndarray:
    """A smooth random error (Gaussian-blurred noise, sigma 6 px: far below the x4 LR Nyquist frequency)."""
    noise = np.random.default_rng(seed).normal(0, 1, shape)
    smooth = cv2.GaussianBlur(noise, (0, 0), 6)
    return smooth / smooth.std() * amplitude


@pytest.fixture(scope='module')
def photos():
    """Two real photos as HR, each with an SR stand-in that misses by a low-band error."""
    out = []
    for seed, name in enumerate(('astronaut', 'coffee')):
        hr = load_photo(name)[80:80 + SIZE, 120:120 + SIZE].astype(np.float64)
        out.append((to_uint8(hr + low_band_error(hr.shape, seed)), to_uint8(hr)))
    return out


@pytest.fixture(scope='module')
def ae_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('fidelity_ae')
    torch.manual_seed(0)
    box = build_network(dict(BOX_AE))
    default_init_weights(box, 1)  # the decoder carries signal
    box_path = str(folder / 'box_ae.pth')
    torch.save({'params_ema': box.state_dict()}, box_path)
    return {'rrdb': write_autoencoder(str(folder / 'ae.pth')), 'box': box_path}


def ae_options(ae_files, kind: str = 'rrdb') -> dict:
    return {'autoencoder': dict(TINY_AE if kind == 'rrdb' else BOX_AE), 'pretrain_network_ae': ae_files[kind],
            'param_key_ae': 'params_ema'}


def psi_float64(ae_files, kind: str, bgr: np.ndarray) -> np.ndarray:
    """psi(image) with the file's weights in float64, as a BGR image in [0, 255] units."""
    net = build_network(dict(TINY_AE if kind == 'rrdb' else BOX_AE))
    net.load_state_dict(torch.load(ae_files[kind], map_location='cpu')['params_ema'])
    net = net.double().eval()
    x = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1) / 255.))[None]
    with torch.no_grad():
        out = net(x)[0].numpy()
    return out.transpose(1, 2, 0)[..., ::-1] * 255.


# ------------------------------------------------------------------ AE-PSNR

def test_ae_psnr_is_the_psnr_of_the_two_autoencoder_outputs(photos, ae_files):
    for sr, hr in photos:
        expected = psnr_y(psi_float64(ae_files, 'rrdb', sr), psi_float64(ae_files, 'rrdb', hr), 4)
        measured = calculate_ae_psnr(sr, hr, 4, test_y_channel=True, **ae_options(ae_files))
        assert measured == pytest.approx(expected, abs=2e-3)
        # the auto-encoder changes the figure: it is not the plain PSNR
        assert abs(measured - calculate_psnr(sr, hr, 4, test_y_channel=True)) > 1
    # through BasicSR's own dispatcher with a val.metrics block (extra keys such as 'better' are accepted)
    sr, hr = photos[0]
    block = dict(type='calculate_ae_psnr', crop_border=4, test_y_channel=True, better='higher', **ae_options(ae_files))
    assert calculate_metric({'img': sr, 'img2': hr}, block) == pytest.approx(
        calculate_ae_psnr(sr, hr, 4, test_y_channel=True, **ae_options(ae_files)), abs=1e-9)


def test_ae_psnr_does_not_move_for_detail_the_box_encoder_removes(photos, ae_files):
    """A +-6 grey-level checkerboard averages to 0 over every 4x4 block: the box encoder removes it, so psi and
    AE-PSNR do not change (float32 rounding aside), while PSNR drops by decibels."""
    sr, hr = photos[0]
    sr = np.clip(sr, 10, 245)  # no clipping below, so the checkerboard keeps a zero block mean
    yy, xx = np.mgrid[:SIZE, :SIZE]
    checker = (6 * (-1)**(yy + xx))[..., None].astype(np.int16)
    sr_detail = (sr.astype(np.int16) + checker).astype(np.uint8)
    options = ae_options(ae_files, 'box')
    before = calculate_ae_psnr(sr, hr, 4, test_y_channel=True, **options)
    after = calculate_ae_psnr(sr_detail, hr, 4, test_y_channel=True, **options)
    assert np.isfinite(before) and abs(after - before) < 1e-4
    assert calculate_psnr(sr, hr, 4, test_y_channel=True) - calculate_psnr(sr_detail, hr, 4, test_y_channel=True) > 1
    # the same AE does see an error the box average keeps
    shifted = np.clip(sr.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    assert before - calculate_ae_psnr(shifted, hr, 4, test_y_channel=True, **options) > 1


def test_ae_psnr_needs_its_autoencoder_and_fitting_weights(photos, ae_files):
    sr, hr = photos[0]
    with pytest.raises(OptionError, match='calculate_ae_psnr: pretrain_network_ae is required'):
        calculate_ae_psnr(sr, hr, 4, autoencoder=dict(TINY_AE))
    with pytest.raises(OptionError, match='calculate_ae_psnr: autoencoder must be an option dict'):
        calculate_ae_psnr(sr, hr, 4, pretrain_network_ae=ae_files['rrdb'])
    wider = dict(TINY_AE, num_feat=64)
    with pytest.raises(ValueError, match='calculate_ae_psnr:pretrain_network_ae: .* does not fit'):
        calculate_ae_psnr(sr, hr, 4, autoencoder=wider, pretrain_network_ae=ae_files['rrdb'])


# ------------------------------------------------------------------ LR-PSNR

def test_lr_psnr_is_the_psnr_of_the_matlab_bicubic_downscales(photos):
    for sr, hr in photos:
        down_sr, down_hr = (matlab_bicubic_reference(x.astype(np.float64), 0.25) for x in (sr, hr))
        expected = psnr_y(down_sr, down_hr, 1)  # crop_border 4 HR px = 1 LR px
        assert calculate_lr_psnr(sr, hr, 4, scale=4, test_y_channel=True) == pytest.approx(expected, abs=1e-4)
    sr, hr = photos[0]
    block = dict(type='calculate_lr_psnr', crop_border=4, scale=4, test_y_channel=True, better='higher')
    assert calculate_metric({'img': sr, 'img2': hr}, block) == calculate_lr_psnr(sr, hr, 4, test_y_channel=True)


def test_lr_psnr_rises_as_sr_moves_towards_hr_inside_the_lr_band(photos):
    """SR = HR + t d with d a low-band error: each halving of t gains ~6 dB of LR-PSNR, as it does of PSNR."""
    _, hr = photos[0]
    d = low_band_error(hr.shape, seed=3)
    srs = [to_uint8(hr + t * d) for t in (1, 0.5, 0.25, 0.125)]
    lr_psnr = [calculate_lr_psnr(sr, hr, 4, test_y_channel=True) for sr in srs]
    psnr = [calculate_psnr(sr, hr, 4, test_y_channel=True) for sr in srs]
    lr_gains, gains = np.diff(lr_psnr), np.diff(psnr)
    assert (lr_gains > 5).all() and (lr_gains < 7).all(), lr_psnr
    assert np.abs(lr_gains - gains).max() < 1, (lr_psnr, psnr)


@pytest.mark.parametrize('frequency', [0.5, 0.375, 0.25])
def test_lr_psnr_barely_moves_for_detail_above_the_lr_nyquist_frequency(photos, frequency):
    """Adding a +-8 grey-level sinusoid above 1/8 cycles/px (the x4 LR Nyquist frequency) costs decibels of
    PSNR and under a tenth of that in LR-PSNR."""
    sr, hr = photos[1]
    xx = np.arange(SIZE)[None, :, None]
    detail = to_uint8(sr.astype(np.float64) + 8 * np.cos(2 * np.pi * frequency * xx))
    psnr_drop = calculate_psnr(sr, hr, 4, test_y_channel=True) - calculate_psnr(detail, hr, 4, test_y_channel=True)
    lr_move = abs(calculate_lr_psnr(sr, hr, 4, test_y_channel=True) - calculate_lr_psnr(detail, hr, 4,
                                                                                      test_y_channel=True))
    assert psnr_drop > 1 and lr_move < 0.1 * psnr_drop, (psnr_drop, lr_move)


def test_lr_psnr_rejects_what_it_cannot_compare(photos):
    sr, hr = photos[0]
    with pytest.raises(ValueError, match='calculate_lr_psnr: image shapes differ'):
        calculate_lr_psnr(sr[:-4], hr, 4)
    with pytest.raises(ValueError, match=r'calculate_lr_psnr: scale=0 must be a positive integer'):
        calculate_lr_psnr(sr, hr, 4, scale=0)


# ------------------------------------------------------------------ aesop-eval columns

def test_eval_protocol_paper_adds_lr_psnr_and_ae_psnr_columns(results_and_datasets, ae_files, capsys):  # noqa: F811
    results, datasets, _ = results_and_datasets
    evaluate.main(['--protocol', 'paper', '--results', str(results), '--datasets', str(datasets), '--skip-perceptual',
                   '--no-progress', '--lr-psnr', '--ae', ae_files['rrdb'], '--ae-opt', str(dict(TINY_AE))])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('|')]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    assert header[1:5] == ['Set14 PSNR ↑', 'Set14 SSIM ↑', 'Set14 LR-PSNR ↑', 'Set14 AE-PSNR ↑']
    with open(results / 'paper_table.csv') as f:
        table = {row['method']: row for row in csv.DictReader(f)}
    folder = results / 'run_a' / 'visualization' / 'Set14'
    pairs = [(cv2.imread(str(p)), cv2.imread(str(datasets / 'Set14' / 'HR_mod4' / (p.stem[:-len('_run_a')] + '.png'))))
             for p in sorted(folder.iterdir())]
    lr = np.mean([calculate_lr_psnr(sr, hr, 4, scale=4, test_y_channel=True) for sr, hr in pairs])
    ae = np.mean([calculate_ae_psnr(sr, hr, 4, test_y_channel=True, **ae_options(ae_files)) for sr, hr in pairs])
    assert float(table['run_a']['Set14 lr_psnr']) == pytest.approx(lr, abs=1e-5)
    assert float(table['run_a']['Set14 ae_psnr']) == pytest.approx(ae, abs=1e-5)
    with pytest.raises(SystemExit):
        evaluate.parse_args(['--protocol', 'paper', '--ae', ae_files['rrdb']])  # --ae without --ae-opt
