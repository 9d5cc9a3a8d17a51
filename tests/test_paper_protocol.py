"""The authors' evaluation protocol: ``aesop-prepare --mod 12`` data made as theirs (HR mod-cropped, LR by
MATLAB bicubic in float64) and ``aesop-eval --protocol paper`` tabulating every run over their benchmarks."""
import csv
import os

import cv2
import numpy as np
import pytest
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize

from aesop_basicsr import evaluate, prepare
from aesop_basicsr.utils.sample_data import load_photo

# real photos cut to sides that are not multiples of 12 (nor all of 4); the whole astronaut (512 x 512) has
# pixels where float32 and float64 round to different grey levels, so the test tells the two apart
PHOTOS = {'astronaut': (512, 512), 'coffee': (250, 398), 'chelsea': (155, 230)}


def matlab_bicubic_reference(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's ``imresize(I, scale, 'bicubic')`` with antialiasing, written out in float64 from its definition
    (cubic kernel a = -0.5 stretched by 1/scale, half-pixel centres, symmetric borders), axis by axis."""

    def cubic(x):
        ax = np.abs(x)
        return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) *
                ((ax > 1) & (ax <= 2)))

    def along(img, axis):
        length = img.shape[axis]
        out_length = int(np.ceil(length * scale))
        width = 4 / scale
        centres = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinates
        taps = np.floor(centres - width / 2)[:, None] + np.arange(int(np.ceil(width)) + 2)[None]
        weights = scale * cubic((centres[:, None] - taps) * scale)
        weights /= weights.sum(axis=1, keepdims=True)
        index = taps.astype(int) - 1  # 0-based
        index = np.where(index < 0, -index - 1, index)  # symmetric: ... 1 0 | 0 1 2 ...
        index = np.where(index >= length, 2 * length - index - 1, index)
        moved = np.moveaxis(img, axis, 0)
        result = np.einsum('ok,ok...->o...', weights, moved[index])
        return np.moveaxis(result, 0, axis)

    return along(along(image.astype(np.float64), 0), 1)


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / 'original'
    folder.mkdir()
    for name, (h, w) in PHOTOS.items():
        cv2.imwrite(str(folder / f'{name}.png'), load_photo(name)[:h, :w])
    return folder


def test_prepare_mod12_makes_the_authors_lr_in_float64(photo_folder, tmp_path, capsys):
    """HR sides become multiples of 12 (the top-left crop), LR is MATLAB bicubic of it computed in float64."""
    out = tmp_path / 'BSD100mod12'
    prepare.main(['--input', str(photo_folder), '--output', str(out), '--scale', '4', '--mod', '12',
                  '--workers', '1', '--no-progress'])
    assert sorted(os.listdir(out)) == ['HR_mod12', 'LR_bicubic_x4_mod12']
    differ_from_float32 = 0
    for name, (h, w) in PHOTOS.items():
        hr = cv2.imread(str(out / 'HR_mod12' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        lr = cv2.imread(str(out / 'LR_bicubic_x4_mod12' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert hr.shape == (h - h % 12, w - w % 12, 3) and hr.shape[0] % 12 == hr.shape[1] % 12 == 0
        assert np.array_equal(hr, load_photo(name)[:hr.shape[0], :hr.shape[1]])
        expected = np.clip(np.round(matlab_bicubic_reference(hr / 255., 0.25) * 255.), 0, 255).astype(np.uint8)
        assert lr.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3)
        assert np.array_equal(lr, expected), name
        # BasicSR's own imresize computes in float32: the same image but for rounding on a few pixels
        float32 = np.clip(np.round(imresize(hr.astype(np.float32) / 255., 0.25) * 255.), 0, 255).astype(np.uint8)
        diff = np.abs(float32.astype(int) - lr.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        differ_from_float32 += int((diff > 0).sum())
    assert differ_from_float32 > 0, 'these photos no longer tell float64 from float32 LR; choose others'
    assert '3 images: 3 prepared' in capsys.readouterr().out


def test_prepare_mod_must_be_a_multiple_of_the_scale(photo_folder, tmp_path):
    with pytest.raises(SystemExit, match='--mod: 6 must be a positive multiple of --scale 4'):
        prepare.main(['--input', str(photo_folder), '--output', str(tmp_path / 'o'), '--mod', '6', '--workers', '1',
                      '--no-progress'])
    assert not (tmp_path / 'o').exists()


def _degraded(hr: np.ndarray, seed: int) -> np.ndarray:
    """An SR stand-in that depends on the HR image: bicubic x4 down and up, plus a little noise."""
    h, w = hr.shape[:2]
    up = cv2.resize(cv2.resize(hr, (w // 4, h // 4), interpolation=cv2.INTER_AREA), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(seed).normal(0, 3, hr.shape)
    return np.clip(up + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def results_and_datasets(tmp_path):
    """datasets/<benchmark>/HR_mod<m> as aesop-prepare writes them, and results/<run>/visualization/<benchmark>
    as aesop-test writes them (<image>_<run>.png): run_a has Set14 and BSD100mod12, run_b only Set14."""
    datasets, results = tmp_path / 'datasets', tmp_path / 'results'
    sets = {'Set14': (4, ['astronaut', 'coffee']), 'BSD100mod12': (12, ['chelsea', 'rocket'])}
    expected = {}
    for benchmark, (mod, names) in sets.items():
        (datasets / benchmark / f'HR_mod{mod}').mkdir(parents=True)
        for index, name in enumerate(names):
            hr = load_photo(name)[:96, :120]
            cv2.imwrite(str(datasets / benchmark / f'HR_mod{mod}' / f'{name}.png'), hr)
            for seed, run in enumerate(('run_a', 'run_b')):
                if run == 'run_b' and benchmark != 'Set14':
                    continue
                folder = results / run / 'visualization' / benchmark
                folder.mkdir(parents=True, exist_ok=True)
                sr = _degraded(hr, seed * 10 + index)
                cv2.imwrite(str(folder / f'{name}_{run}.png'), sr)
                expected.setdefault((run, benchmark), []).append(
                    (calculate_psnr(sr, hr, 4, test_y_channel=True), calculate_ssim(sr, hr, 4, test_y_channel=True)))
    return results, datasets, expected


def test_eval_protocol_paper_prints_the_papers_table(results_and_datasets, stand_in_alexnet, stand_in_vgg16,
                                                      capsys):
    """Rows = runs, columns = the seven benchmarks x PSNR/SSIM/LPIPS/DISTS; each cell the run's average over the
    benchmark (PSNR/SSIM on Y with a 4-pixel border, as BasicSR computes them), '–' where a run has none."""
    results, datasets, expected = results_and_datasets
    evaluate.main(['--protocol', 'paper', '--results', str(results), '--datasets', str(datasets), '--no-progress'])
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith('|')]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    assert header[0] == 'method' and len(header) == 1 + 7 * 4
    assert header[1:5] == ['Set14 PSNR ↑', 'Set14 SSIM ↑', 'Set14 LPIPS ↓', 'Set14 DISTS ↓']
    assert header[-1] == 'LSDIR250mod12 DISTS ↓'
    with open(results / 'paper_table.csv') as f:
        table = {row['method']: row for row in csv.DictReader(f)}
    assert list(table) == ['run_a', 'run_b']
    for (run, benchmark), values in expected.items():
        psnr, ssim = np.mean(values, axis=0)
        assert float(table[run][f'{benchmark} psnr']) == pytest.approx(psnr, abs=1e-6)
        assert float(table[run][f'{benchmark} ssim']) == pytest.approx(ssim, abs=1e-6)
        assert float(table[run][f'{benchmark} lpips']) > 0 and float(table[run][f'{benchmark} dists']) > 0
    assert table['run_b']['BSD100mod12 psnr'] == '' and table['run_a']['LSDIR250mod12 psnr'] == ''
    run_b = [c.strip() for c in lines[3].strip('|').split('|')]
    assert run_b[0] == 'run_b' and run_b[1] == f"{float(table['run_b']['Set14 psnr']):.2f}" and run_b[5] == '–'


def test_eval_protocol_paper_names_the_missing_hr_folder(results_and_datasets):
    results, datasets, _ = results_and_datasets
    os.rename(datasets / 'BSD100mod12' / 'HR_mod12', datasets / 'BSD100mod12' / 'HR_mod4')
    with pytest.raises(SystemExit, match=r'HR_mod12.*--mod 12'):
        evaluate.main(['--protocol', 'paper', '--results', str(results), '--datasets', str(datasets),
                       '--skip-perceptual', '--no-progress'])
