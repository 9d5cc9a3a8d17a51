"""aesop-demo: one reduced end-to-end run through BasicSR's real train_pipeline, then checks on its report."""
import csv
import json
import math
import os
import re
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.metrics import calculate_psnr
from basicsr.utils import img2tensor

from aesop_basicsr import demo
from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.metrics.colour_offset_metric import calculate_colour_offset, mean_colour_offset
from aesop_basicsr.metrics.hf_energy_metric import calculate_hf_energy_ratio
from aesop_basicsr.utils import panels
from aesop_basicsr.demo.options import GAN_WEIGHT, GAN_WEIGHT_WITHOUT_PERCEPTUAL, DemoSettings, all_options
from conftest import run_module

VAL_HW = (demo.VAL_HR_SIZE, demo.VAL_HR_SIZE)


@pytest.fixture(scope='module')
def quick_report(tmp_path_factory):
    """``python -m aesop_basicsr.demo --quick`` in a fresh folder, with an empty torch hub cache (no VGG19)."""
    work = tmp_path_factory.mktemp('demo_run')
    torch_home = tmp_path_factory.mktemp('empty_torch_home')
    old = os.environ['TORCH_HOME']
    os.environ['TORCH_HOME'] = str(torch_home)
    try:
        proc = run_module('aesop_basicsr.demo', '--quick', '--out', 'report', cwd=str(work))
    finally:
        os.environ['TORCH_HOME'] = old
    return {'root': str(work / 'report'), 'stdout': proc.stdout, 'work': str(work)}


def read_rgb_tensor(path):
    return img2tensor(cv2.imread(path).astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0)


def load_report(root):
    with open(osp.join(root, 'metrics.json')) as f:
        return json.load(f)


def test_demo_reports_every_stage_and_says_perceptual_loss_is_off(quick_report):
    out = quick_report['stdout']
    for step in ('[1/5]', '[2/5]', '[3/5]', '[4/5]', '[5/5]'):
        assert step in out
    assert 'VGG19 perceptual loss off' in out
    assert 'AESOP-GAN' in out and 'L1-GAN' in out  # the table is printed too


def test_option_files_were_run_by_basicsr_and_gans_differ_only_in_pixel_opt(quick_report):
    root = quick_report['root']
    names = sorted(os.listdir(osp.join(root, 'options')))
    assert names == ['1_psnr.yml', '2_ae.yml', '3_gan_l1.yml', '4_gan_aesop.yml']
    for name in names:
        with open(osp.join(root, 'logs', name.replace('.yml', '.log'))) as f:
            assert 'End of training' in f.read()
    with open(osp.join(root, 'options', '3_gan_l1.yml')) as f:
        l1 = yaml.safe_load(f)
    with open(osp.join(root, 'options', '4_gan_aesop.yml')) as f:
        aesop = yaml.safe_load(f)
    assert l1['train'].pop('pixel_opt')['type'] == 'L1Loss'
    aesop_pixel = aesop['train'].pop('pixel_opt')
    assert aesop_pixel['type'] == 'AESOPLoss'
    assert aesop_pixel['pretrain_network_ae'] == 'experiments/demo_2_ae/models/net_g_latest.pth'
    assert l1.pop('name') != aesop.pop('name')
    assert l1 == aesop
    assert l1['model_type'] == 'ESRGANLDLModel' and l1['train']['ldl_opt']['type'] == 'L1Loss'
    assert l1['train']['ema_decay'] > 0  # LDL's artifact map needs the EMA generator
    assert l1['train']['perceptual_opt'] is None and l1['train']['gan_opt']['type'] == 'GANLoss'
    # no VGG19 on disk: the weaker adversarial weight, which the README states and the console names
    assert l1['train']['gan_opt']['loss_weight'] == GAN_WEIGHT_WITHOUT_PERCEPTUAL < GAN_WEIGHT
    assert f'adversarial at {GAN_WEIGHT_WITHOUT_PERCEPTUAL:g} instead of {GAN_WEIGHT:g}' in quick_report['stdout']



def test_report_table_is_finite_and_complete(quick_report):
    root = quick_report['root']
    report = load_report(root)
    assert list(report['methods']) == ['bicubic', 'psnr', 'gan_l1', 'gan_aesop']
    stems = sorted(osp.splitext(n)[0] for n in os.listdir(osp.join(root, 'data', 'val', 'hr')))
    assert len(stems) == len(demo.VAL_PHOTOS)
    for method in report['methods'].values():
        assert sorted(method['images']) == stems
        for scores in list(method['images'].values()) + [method['mean']]:
            assert set(scores) == set(report['metrics']) >= {'psnr', 'ssim', 'l1', 'aesop'}
            assert all(math.isfinite(v) for v in scores.values())
            assert 5 < scores['psnr'] < 60 and 0 < scores['ssim'] <= 1
    with open(osp.join(root, 'metrics.csv')) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * (len(stems) + 1)
    with open(osp.join(root, 'README.md')) as f:
        readme = f.read()
    mean = report['methods']['gan_aesop']['mean']
    assert f'| AESOP-GAN | {mean["psnr"]:.2f} | {mean["psnr_rgb"]:.2f} | {mean["ssim"]:.4f} |' in readme


def test_table_has_the_blur_measure_for_every_row_and_the_report_has_the_ae_card(quick_report):
    root = quick_report['root']
    report = load_report(root)
    assert 'hf' in report['metrics']
    stem = sorted(report['methods']['bicubic']['images'])[0]
    hr = cv2.imread(osp.join(root, 'data', 'val', 'hr', f'{stem}.png'))
    for key, method in report['methods'].items():
        sr = cv2.imread(osp.join(root, 'images', f'{stem}_{key}.png'))
        expected = calculate_hf_energy_ratio(sr, hr, crop_border=4, scale=4)
        assert method['images'][stem]['hf'] == pytest.approx(expected, rel=1e-9)
        assert 0 < method['mean']['hf'] < 10
    assert report['methods']['bicubic']['mean']['hf'] < 0.7  # bicubic upscaling is blurred
    with open(osp.join(root, 'README.md')) as f:
        readme = f.read()
    assert 'HF energy SR/HR' in readme and 'What this demo shows, and what it cannot' in readme
    card = report['ae_report_card']
    assert set(card['verdicts']) == {'recon_psnr', 'code_psnr', 'frequency_response', 'encoder_gain'}
    for line in card['verdicts'].values():
        assert line in readme
    for name in ('report.md', 'report.json', 'per_image.csv', 'frequency_response.csv', 'frequency_response.png'):
        assert osp.isfile(osp.join(root, card['folder'], name))
    assert 'Auto-encoder report card' in quick_report['stdout']


def test_table_psnr_recomputes_from_saved_pngs_and_matches_basicsr_validation(quick_report):
    root = quick_report['root']
    report = load_report(root)
    stem = sorted(report['methods']['gan_aesop']['images'])[0]
    sr = cv2.imread(osp.join(root, 'images', f'{stem}_gan_aesop.png'))
    hr = cv2.imread(osp.join(root, 'data', 'val', 'hr', f'{stem}.png'))
    psnr = calculate_psnr(sr, hr, crop_border=4, test_y_channel=True)
    assert psnr == pytest.approx(report['methods']['gan_aesop']['images'][stem]['psnr'], abs=1e-9)
    with open(osp.join(root, 'metrics.csv')) as f:
        row = next(r for r in csv.DictReader(f) if r['method'] == 'gan_aesop' and r['image'] == stem)
    assert float(row['psnr']) == pytest.approx(psnr, abs=1e-5)
    # BasicSR's own final validation of the PSNR run (no EMA; the GAN runs validate their EMA generator)
    # logged the same mean PSNR as the table's row of its saved generator
    with open(osp.join(root, 'logs', '1_psnr.log')) as f:
        logged = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', f.read())]
    assert logged[-1] == pytest.approx(report['methods']['psnr']['mean']['psnr'], abs=1e-4)


def test_aesop_column_is_aesop_loss_of_the_trained_autoencoder(quick_report):
    root = quick_report['root']
    report = load_report(root)
    with open(osp.join(root, 'options', '4_gan_aesop.yml')) as f:
        pixel_opt = yaml.safe_load(f)['train']['pixel_opt']
    loss = AESOPLoss(pixel_opt['autoencoder'], pretrain_network_ae=osp.join(root, pixel_opt['pretrain_network_ae']),
                     param_key_ae=pixel_opt['param_key_ae'])
    stem = sorted(report['methods']['gan_l1']['images'])[-1]
    sr = read_rgb_tensor(osp.join(root, 'images', f'{stem}_gan_l1.png'))
    hr = read_rgb_tensor(osp.join(root, 'data', 'val', 'hr', f'{stem}.png'))
    with torch.no_grad():
        expected = float(loss(sr, hr))
    assert report['methods']['gan_l1']['images'][stem]['aesop'] == pytest.approx(expected, rel=1e-5)
    assert report['methods']['gan_l1']['images'][stem]['l1'] == pytest.approx(float((sr - hr).abs().mean()), rel=1e-5)


def test_panels_have_the_expected_layout_and_hold_the_saved_outputs(quick_report):
    root = quick_report['root']
    h, w = VAL_HW
    for stem in load_report(root)['methods']['gan_aesop']['images']:
        compare = cv2.imread(osp.join(root, 'panels', f'{stem}_compare.png'))
        errors = cv2.imread(osp.join(root, 'panels', f'{stem}_errors.png'))
        assert compare.shape[:2] == panels.panel_size(VAL_HW, columns=4)
        assert errors.shape[:2] == panels.panel_size(VAL_HW, columns=3, rows=2)
        # tile 3 of the comparison is the AESOP-GAN output, tile 4 the HR image
        top, step = panels.HEADER_HEIGHT, w + panels.GAP
        aesop_tile = compare[top:top + h, 2 * step:2 * step + w]
        np.testing.assert_array_equal(aesop_tile, cv2.imread(osp.join(root, 'images', f'{stem}_gan_aesop.png')))
        np.testing.assert_array_equal(compare[top:top + h, 3 * step:3 * step + w],
                                      cv2.imread(osp.join(root, 'data', 'val', 'hr', f'{stem}.png')))


def test_rerun_into_the_same_folder_keeps_the_earlier_report(tmp_path):
    out = tmp_path / 'report'
    assert demo.choose_report_dir(str(out), overwrite=False) == str(out)  # new folder: used as is
    out.mkdir()
    (out / demo.MARKER).write_text('{}')
    (out / 'README.md').write_text('earlier report')
    other = demo.choose_report_dir(str(out), overwrite=False)
    assert other != str(out) and osp.dirname(other) == str(tmp_path) and osp.basename(other).startswith('report_')
    assert (out / 'README.md').read_text() == 'earlier report'
    assert demo.choose_report_dir(str(out), overwrite=True) == str(out)
    assert not out.exists()  # --overwrite removed the earlier demo report


def test_overwrite_refuses_a_folder_that_is_not_a_demo_report(tmp_path):
    (tmp_path / 'thesis.tex').write_text('precious')
    with pytest.raises(demo.DemoError, match='not an aesop-demo report'):
        demo.choose_report_dir(str(tmp_path), overwrite=True)
    assert (tmp_path / 'thesis.tex').read_text() == 'precious'
    with pytest.raises(SystemExit, match='not an aesop-demo report'):
        demo.main(['--out', str(tmp_path), '--overwrite'])


def test_vgg19_on_disk_turns_on_the_same_perceptual_loss_in_both_gan_runs(tmp_path, stand_in_vgg19):
    assert demo.find_vgg19(str(tmp_path)) == stand_in_vgg19
    options = all_options(DemoSettings(perceptual=True))
    l1, aesop = options['gan_l1']['train'], options['gan_aesop']['train']
    assert l1['perceptual_opt'] == aesop['perceptual_opt']
    assert l1['perceptual_opt']['vgg_type'] == 'vgg19' and l1['perceptual_opt']['perceptual_weight'] == 1.0
    assert l1['gan_opt']['loss_weight'] == aesop['gan_opt']['loss_weight'] == GAN_WEIGHT == 5e-3  # the paper's
    assert all_options(DemoSettings())['gan_l1']['train']['perceptual_opt'] is None


def test_basicsr_style_vgg19_path_is_exposed_to_the_training_runs(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_hub'))
    user_dir = tmp_path / 'user'
    vgg = user_dir / 'experiments' / 'pretrained_models' / demo.VGG19_FILE
    vgg.parent.mkdir(parents=True)
    vgg.write_bytes(b'weights')
    assert demo.find_vgg19(str(user_dir)) == str(vgg)
    report = tmp_path / 'report'
    demo.expose_vgg19(str(vgg), str(report))
    assert (report / 'experiments' / 'pretrained_models' / demo.VGG19_FILE).read_bytes() == b'weights'


def test_a_failing_stage_names_its_log(tmp_path):
    (tmp_path / 'logs').mkdir()
    (tmp_path / 'bad.yml').write_text('name: bad\nmodel_type: SRModel\nnum_gpu: 0\npath: {}\n'
                                      'datasets: {train: {dataroot_gt: "<REQUIRED: HR folder>"}}\n')
    with pytest.raises(demo.DemoError, match=r'logs/bad\.log') as err:
        demo.run_training(str(tmp_path), 'bad.yml', 'logs/bad.log', 10)
    assert 'dataroot_gt' in str(err.value)


def test_iteration_knobs(tmp_path):
    args = demo.parse_args(['--quick', '--iters', '9'])
    settings = demo.settings_from_args(args, perceptual=False)
    assert (settings.psnr_iters, settings.ae_iters, settings.gan_iters) == (demo.QUICK.psnr_iters,
                                                                              demo.QUICK.ae_iters, 9)
    settings = demo.settings_from_args(demo.parse_args(['--psnr-iters', '7']), perceptual=False)
    assert settings.psnr_iters == 7 and settings.gan_iters == DemoSettings().gan_iters
    with pytest.raises(ValueError, match='gan_iters'):
        DemoSettings(gan_iters=0)


def float64_rgb(path):
    """A PNG as (H, W, 3) float64 RGB, read without BasicSR."""
    return cv2.imread(path)[..., ::-1].astype(np.float64)


def test_colour_columns_are_rgb_psnr_and_mean_colour_offsets_of_the_saved_pngs(quick_report):
    root = quick_report['root']
    report = load_report(root)
    with open(osp.join(root, 'README.md')) as f:
        readme = f.read()
    border = report['crop_border']
    for key, method in report['methods'].items():
        offsets = []
        for stem, scores in method['images'].items():
            sr = float64_rgb(osp.join(root, 'images', f'{stem}_{key}.png'))[border:-border, border:-border]
            hr = float64_rgb(osp.join(root, 'data', 'val', 'hr', f'{stem}.png'))[border:-border, border:-border]
            mse = np.mean((sr - hr)**2)
            assert scores['psnr_rgb'] == pytest.approx(10 * math.log10(255.**2 / mse), rel=1e-9)
            offset = [float(np.mean(sr[..., c]) - np.mean(hr[..., c])) for c in range(3)]
            assert [scores[k] for k in ('offset_r', 'offset_g', 'offset_b')] == pytest.approx(offset, abs=1e-9)
            assert scores['colour'] == pytest.approx(max(abs(v) for v in offset), abs=1e-9)
            assert '/'.join(f'{v:+.1f}' for v in offset) in readme  # the per-output colour table
            offsets.append(scores['colour'])
        assert method['mean']['colour'] == pytest.approx(np.mean(offsets), abs=1e-9)
    assert report['methods']['bicubic']['mean']['colour'] < 0.5  # bicubic upscaling keeps the mean colour
    # every output keeps HR's mean colour within 2 grey levels per channel (a tiny RRDBNet after the quick
    # run's 20 iterations is off by tens of grey levels: MSRResNet adds its output to the upsampled LR)
    worst = {key: max(scores['colour'] for scores in method['images'].values())
             for key, method in report['methods'].items()}
    assert max(worst.values()) <= 2, worst
    mean = report['methods']['psnr']['mean']
    assert f'| PSNR net (start) | {mean["psnr"]:.2f} | {mean["psnr_rgb"]:.2f} |' in readme


def test_colour_offset_metric_names_the_channel_and_sign_of_a_cast():
    rng = np.random.default_rng(0)
    hr = rng.integers(20, 230, (40, 36, 3)).astype(np.uint8)  # BGR
    pink = hr.astype(np.int64)
    pink[..., 1] -= 6  # green down ...
    pink[..., 2] += 3  # ... red up: pink
    pink[:2] = 0  # inside the crop border: ignored
    pink = pink.astype(np.uint8)
    np.testing.assert_allclose(mean_colour_offset(pink, hr, crop_border=2), [3, -6, 0], atol=1e-12)  # R, G, B
    assert calculate_colour_offset(pink, hr, crop_border=2) == pytest.approx(6, abs=1e-12)
    assert calculate_colour_offset(hr, hr, crop_border=0) == 0
    assert abs(mean_colour_offset(pink, hr, crop_border=0)[2]) > 1  # without the crop the black rows count
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_colour_offset(hr, hr[:-1], crop_border=0)
