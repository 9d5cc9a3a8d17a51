"""aesop-prepare and aesop-eval on real photos, against an independent float64 MATLAB bicubic and BasicSR's metrics."""
import csv
import os
import re
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import METRIC_REGISTRY

from aesop_basicsr import evaluate, prepare
from aesop_basicsr.utils.sample_data import load_photo
from conftest import REPO_ROOT, run_module
from test_paper_protocol import matlab_bicubic_reference

# (photo, height, width): sizes that are not multiples of 4, so mod-cropping matters
PHOTOS = (('astronaut', 150, 203), ('coffee', 149, 201), ('chelsea', 131, 97))


@pytest.fixture
def hr_folder(tmp_path):
    folder = tmp_path / 'input'
    folder.mkdir()
    for name, h, w in PHOTOS:
        cv2.imwrite(str(folder / f'{name}.png'), load_photo(name)[:h, :w])
    cv2.imwrite(str(folder / 'small.jpg'), load_photo('rocket')[:60, :90], [cv2.IMWRITE_JPEG_QUALITY, 95])
    (folder / 'notes.txt').write_text('not an image')
    return folder


def read(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def matlab_bicubic_x4(hr_uint8: np.ndarray) -> np.ndarray:
    """The LR the paper's data uses: MATLAB bicubic in float64 (an independent implementation), rounded."""
    lr = matlab_bicubic_reference(hr_uint8.astype(np.float64) / 255., 0.25)
    return np.clip(np.round(lr * 255.), 0, 255).astype(np.uint8)


def snapshot(root):
    return {str(p): p.stat().st_mtime_ns for p in root.rglob('*') if p.is_file()}


# ------------------------------------------------------------------ aesop-prepare

def test_prepare_writes_mod_cropped_hr_and_matlab_bicubic_lr(hr_folder, tmp_path, capsys):
    out = tmp_path / 'out'
    prepare.main(['--input', str(hr_folder), '--output', str(out), '--scale', '4', '--workers', '1', '--no-progress'])
    for name, h, w in PHOTOS:
        source = read(hr_folder / f'{name}.png')
        hr = read(out / 'HR_mod4' / f'{name}.png')
        assert hr.shape == (h // 4 * 4, w // 4 * 4, 3)
        assert np.array_equal(hr, source[:h // 4 * 4, :w // 4 * 4])
        lr = read(out / 'LR_bicubic_x4' / f'{name}.png')
        assert lr.shape == (h // 4, w // 4, 3)
        assert np.array_equal(lr, matlab_bicubic_x4(hr)), name
    assert read(out / 'HR_mod4' / 'small.png').shape == (60, 88, 3)  # a JPEG input is written as PNG
    assert sorted(os.listdir(out / 'LR_bicubic_x4')) == ['astronaut.png', 'chelsea.png', 'coffee.png', 'small.png']
    assert not list(out.rglob('*.part'))
    printed = capsys.readouterr().out
    assert '4 images: 4 prepared, 0 already done' in printed and '8 files written' in printed


def test_prepare_subimages_pair_the_same_regions(hr_folder, tmp_path):
    out = tmp_path / 'out'
    prepare.main(['--input', str(hr_folder), '--output', str(out), '--subimages', '--crop-size', '96', '--step', '48',
                  '--workers', '2', '--no-progress'])
    hr = read(out / 'HR_mod4' / 'astronaut.png')  # 148 x 200
    lr = read(out / 'LR_bicubic_x4' / 'astronaut.png')
    # crops every 48 px, plus one flush with the far edge (thresh_size 0): rows 0 48 52, columns 0 48 96 104
    origins = [(t, l) for t in (0, 48, 52) for l in (0, 48, 96, 104)]
    names = sorted(n for n in os.listdir(out / 'HR_mod4_sub') if n.startswith('astronaut_'))
    assert names == [f'astronaut_s{i:03d}.png' for i in range(1, 13)]
    for index, (top, left) in enumerate(origins, 1):
        hr_sub = read(out / 'HR_mod4_sub' / f'astronaut_s{index:03d}.png')
        lr_sub = read(out / 'LR_bicubic_x4_sub' / f'astronaut_s{index:03d}.png')
        assert np.array_equal(hr_sub, hr[top:top + 96, left:left + 96])
        assert np.array_equal(lr_sub, lr[top // 4:top // 4 + 24, left // 4:left // 4 + 24])
    assert not [n for n in os.listdir(out / 'HR_mod4_sub') if n.startswith('small_')]  # 60 px < one crop


def test_prepare_rerun_skips_finished_files_and_completes_missing_ones(hr_folder, tmp_path, capsys):
    out = tmp_path / 'out'
    args = ['--input', str(hr_folder), '--output', str(out), '--subimages', '--crop-size', '96', '--step', '48',
            '--workers', '1', '--no-progress']
    prepare.main(args)
    before = snapshot(out)
    capsys.readouterr()
    prepare.main(args)
    assert snapshot(out) == before  # nothing rewritten
    assert '4 images: 0 prepared, 4 already done (skipped); 0 files written' in capsys.readouterr().out

    missing = out / 'LR_bicubic_x4_sub' / 'coffee_s003.png'
    expected = read(missing)
    missing.unlink()
    prepare.main(args)
    assert '1 prepared, 3 already done (skipped); 1 files written' in capsys.readouterr().out
    assert np.array_equal(read(missing), expected)
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k != str(missing)} == {k: v for k, v in before.items() if k != str(missing)}


@pytest.mark.parametrize('output', ['.', 'prepared'])
def test_prepare_refuses_to_write_into_its_input(hr_folder, output, capsys):
    before = snapshot(hr_folder)
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(['--input', str(hr_folder), '--output', str(hr_folder / output), '--no-progress'])
    assert 'never writes into its input' in str(exit_info.value)
    assert snapshot(hr_folder) == before


def test_prepare_rejects_crops_that_would_misalign(hr_folder, tmp_path):
    with pytest.raises(SystemExit, match='--crop-size: 98 is not divisible by --scale 4'):
        prepare.main(['--input', str(hr_folder), '--output', str(tmp_path / 'o'), '--subimages', '--crop-size', '98'])
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(SystemExit, match='no images'):
        prepare.main(['--input', str(empty), '--output', str(tmp_path / 'o2')])


def test_prepare_console_script_runs_as_a_module(hr_folder, tmp_path):
    proc = run_module('aesop_basicsr.prepare', '--input', str(hr_folder), '--output', str(tmp_path / 'o'),
                      '--scale', '2', '--workers', '1', cwd=str(tmp_path))
    assert '4 images: 4 prepared' in proc.stdout
    assert read(tmp_path / 'o' / 'LR_bicubic_x2' / 'chelsea.png').shape == (65, 48, 3)


# ------------------------------------------------------------------ aesop-eval

@pytest.fixture
def sr_hr_pair(tmp_path):
    """HR photos and SR images aesop-prepare did not make: OpenCV bicubic upscales of a JPEG'd LR,
    saved with BasicSR's <name>_<suffix>.png naming."""
    hr_dir, sr_dir = tmp_path / 'hr', tmp_path / 'sr'
    hr_dir.mkdir(), sr_dir.mkdir()
    for name, h, w in PHOTOS:
        hr = load_photo(name)[:h // 4 * 4, :w // 4 * 4]
        lr = cv2.resize(hr, (hr.shape[1] // 4, hr.shape[0] // 4), interpolation=cv2.INTER_AREA)
        lr = cv2.imdecode(cv2.imencode('.jpg', lr, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_COLOR)
        sr = cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(hr_dir / f'{name}.png'), hr)
        cv2.imwrite(str(sr_dir / f'{name}_myrun.png'), sr)
    return sr_dir, hr_dir


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_eval_agrees_with_basicsr_psnr_ssim(sr_hr_pair, capsys):
    sr_dir, hr_dir = sr_hr_pair
    evaluate.main(['--sr', str(sr_dir), '--hr', str(hr_dir), '--skip-perceptual', '--no-progress'])
    rows = read_csv(str(sr_dir) + '_metrics.csv')
    assert [r['image'] for r in rows] == sorted(n for n, _, _ in PHOTOS) + ['average']
    psnrs, ssims = [], []
    for row in rows[:-1]:
        sr = cv2.imread(str(sr_dir / f'{row["image"]}_myrun.png'))
        hr = cv2.imread(str(hr_dir / f'{row["image"]}.png'))
        psnrs.append(calculate_psnr(sr, hr, 4, test_y_channel=True))
        ssims.append(calculate_ssim(sr, hr, 4, test_y_channel=True))
        assert float(row['psnr']) == pytest.approx(psnrs[-1], abs=1e-5)
        assert float(row['ssim']) == pytest.approx(ssims[-1], abs=1e-5)
    assert 18 < np.mean(psnrs) < 40 and 0.3 < np.mean(ssims) < 1  # a real, imperfect reconstruction
    assert float(rows[-1]['psnr']) == pytest.approx(np.mean(psnrs), abs=1e-5)
    table = capsys.readouterr().out
    assert '| image | PSNR ↑ | SSIM ↑ |' in table
    assert f'| average | {np.mean(psnrs):.2f} | {np.mean(ssims):.4f} |' in table


def test_eval_names_unmatched_files(sr_hr_pair):
    sr_dir, hr_dir = sr_hr_pair
    os.remove(sr_dir / 'coffee_myrun.png')
    cv2.imwrite(str(sr_dir / 'zebra_myrun.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(['--sr', str(sr_dir), '--hr', str(hr_dir), '--skip-perceptual', '--no-progress'])
    message = str(exit_info.value)
    assert 'coffee.png (expected coffee_myrun.png)' in message
    assert 'SR images have no HR image: zebra_myrun.png' in message


def test_eval_names_both_files_of_a_size_mismatch(sr_hr_pair):
    sr_dir, hr_dir = sr_hr_pair
    cv2.imwrite(str(hr_dir / 'chelsea.png'), load_photo('chelsea')[:131, :97])  # not mod-cropped
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(['--sr', str(sr_dir), '--hr', str(hr_dir), '--skip-perceptual', '--no-progress'])
    message = str(exit_info.value)
    assert f'{sr_dir / "chelsea_myrun.png"} is 96x128 but {hr_dir / "chelsea.png"} is 97x131' in message


def test_eval_reports_a_missing_perceptual_metric(sr_hr_pair, monkeypatch):
    sr_dir, hr_dir = sr_hr_pair
    monkeypatch.delitem(METRIC_REGISTRY._obj_map, 'calculate_lpips', raising=False)
    with pytest.raises(SystemExit, match='calculate_lpips is not in .*--skip-perceptual'):
        evaluate.main(['--sr', str(sr_dir), '--hr', str(hr_dir), '--no-progress'])


def test_eval_uses_registered_perceptual_metrics(sr_hr_pair, monkeypatch):
    """LPIPS/DISTS come from METRIC_REGISTRY, called as BasicSR's validation calls a metric; a metric whose
    weights are missing stops the run on its first image with the metric's own message."""
    sr_dir, hr_dir = sr_hr_pair
    calls = []

    def mean_abs(img, img2, crop_border, **kwargs):  # a stand-in metric honouring the registry contract
        calls.append((img.dtype, img.shape == img2.shape, crop_border))
        return float(np.abs(img.astype(np.float64) - img2).mean() / 255)

    def missing_weights(img, img2, crop_border, **kwargs):
        raise FileNotFoundError('put dists.pth in $TORCH_HOME/hub/checkpoints')

    monkeypatch.setitem(METRIC_REGISTRY._obj_map, 'calculate_lpips', mean_abs)
    monkeypatch.setitem(METRIC_REGISTRY._obj_map, 'calculate_dists', mean_abs)
    rows = evaluate.evaluate_folders(str(sr_dir), str(hr_dir), metrics=('psnr', 'lpips', 'dists'), progress=False)
    assert calls == [(np.uint8, True, 0)] * 6
    sr = cv2.imread(str(sr_dir / 'astronaut_myrun.png'))
    hr = cv2.imread(str(hr_dir / 'astronaut.png'))
    assert rows[0]['lpips'] == pytest.approx(np.abs(sr.astype(float) - hr).mean() / 255)

    monkeypatch.setitem(METRIC_REGISTRY._obj_map, 'calculate_dists', missing_weights)
    with pytest.raises(SystemExit, match='DISTS could not be computed .*dists.pth.*--skip-perceptual'):
        evaluate.main(['--sr', str(sr_dir), '--hr', str(hr_dir), '--no-progress'])


def test_eval_reads_a_test_runs_results_and_agrees_with_basicsr(paired_x4, tmp_path):
    """aesop-test (BasicSR's test pipeline) on real photos with a tiny generator, then aesop-eval --opt on its
    results folder: the averages equal the ones BasicSR's validation logged."""
    torch.manual_seed(0)
    tiny = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    torch.save({'params_ema': build_network(tiny).state_dict()}, tmp_path / 'g.pth')
    with open(osp.join(REPO_ROOT, 'options/test/test_AESOP_RRDB_x4_benchmarks.yml')) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    opt['name'], opt['num_gpu'] = 'tiny_run', 0
    opt['datasets'] = {'test_1': dict(opt['datasets']['test_1'], name='Photos', dataroot_gt=paired_x4['val']['gt'],
                                      dataroot_lq=paired_x4['val']['lq'])}
    opt['network_g'].update(num_feat=8, num_block=1, num_grow_ch=4)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'g.pth')
    for metric in ('lpips', 'dists'):
        opt['val']['metrics'].pop(metric)
    opt_file = tmp_path / 'test.yml'
    opt_file.write_text(yaml.dump(yaml.safe_load(yaml.dump(opt, Dumper=ordered_yaml()[1]))))

    run_module('aesop_basicsr.test', '-opt', str(opt_file), cwd=str(tmp_path))
    log = ''.join(p.read_text() for p in (tmp_path / 'results' / 'tiny_run').glob('test_*.log'))
    logged = {m: float(re.search(rf'# {m}: ([0-9.]+)', log).group(1)) for m in ('psnr', 'ssim')}

    proc = run_module('aesop_basicsr.evaluate', '--opt', str(opt_file), '--skip-perceptual', '--no-progress',
                      cwd=str(tmp_path))
    assert '| dataset | PSNR ↑ | SSIM ↑ |' in proc.stdout
    per_image = read_csv(tmp_path / 'results' / 'tiny_run' / 'aesop_eval_Photos.csv')
    assert len(per_image) == 3  # two photos and the average
    summary = read_csv(tmp_path / 'results' / 'tiny_run' / 'aesop_eval_summary.csv')
    assert summary[0]['dataset'] == 'Photos'
    assert float(summary[0]['psnr']) == pytest.approx(logged['psnr'], abs=1e-4)
    assert float(summary[0]['ssim']) == pytest.approx(logged['ssim'], abs=1e-4)

    # the shipped file as it is: aesop-eval says which key to set
    with pytest.raises(SystemExit, match='set datasets:test_1:dataroot_gt'):
        evaluate.main(['--opt', osp.join(REPO_ROOT, 'options/test/test_AESOP_RRDB_x4_benchmarks.yml')])
