"""aesop-inspect: its AESOP figure is AESOPLoss on the same tensors; its panel; its errors."""
import json
import re
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.archs.arch_util import default_init_weights
from basicsr.metrics import calculate_psnr
from basicsr.utils import img2tensor

from aesop_basicsr import inspect_loss
from aesop_basicsr.demo.report import bicubic_upscale
from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.utils import panels
from conftest import run_module

TINY_AE = {'type': 'AESOPAutoEncoder', 'scale': 4, 'num_feat': 16, 'num_grow_ch': 4, 'num_block': 1,
           'decoder': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                       'num_grow_ch': 4, 'scale': 4}}


@pytest.fixture(scope='module')
def case(tmp_path_factory, paired_x4):
    """A tiny AE checkpoint as AESOPAEModel saves it, its option file, and a real SR/HR pair (bicubic SR)."""
    root = tmp_path_factory.mktemp('inspect')
    torch.manual_seed(0)
    ae = build_network(dict(TINY_AE))
    ema = build_network(dict(TINY_AE))  # different weights under params_ema
    for net in (ae, ema):  # full-scale init: psi depends on its input, as a trained AE's does
        default_init_weights(net, 1)
    ckpt = str(root / 'net_g_latest.pth')
    torch.save({'params': ae.state_dict(), 'params_ema': ema.state_dict()}, ckpt)
    ae_opt = str(root / 'ae.yml')
    with open(ae_opt, 'w') as f:
        yaml.safe_dump({'name': 'ae', 'model_type': 'AESOPAEModel', 'network_g': TINY_AE}, f)
    # a colour photo (the other validation photo is grey, on which a channel mix-up would go unseen)
    name = max(sorted(osp.basename(p) for p in glob_png(paired_x4['val']['gt'])),
               key=lambda n: np.ptp(cv2.imread(osp.join(paired_x4['val']['gt'], n)).astype(int), axis=2).mean())
    hr_path = osp.join(paired_x4['val']['gt'], name)
    sr_path = str(root / 'sr.png')
    lr = cv2.imread(osp.join(paired_x4['val']['lq'], name))
    cv2.imwrite(sr_path, bicubic_upscale(lr, 4))
    return {'root': root, 'ckpt': ckpt, 'ae_opt': ae_opt, 'sr': sr_path, 'hr': hr_path}


def glob_png(folder):
    import glob
    return glob.glob(osp.join(folder, '*.png'))


def tensor(path):
    return img2tensor(cv2.imread(path).astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0)


def figures(stdout):
    return {key: float(value) for key, value in re.findall(r'^(L1|AESOP|PSNR)\s+([-\d.e+]+)', stdout, re.M)}


def run_inspect(capsys, *args):
    inspect_loss.main(list(args))
    return figures(capsys.readouterr().out)


def expected_aesop(case, param_key):
    loss = AESOPLoss(TINY_AE, pretrain_network_ae=case['ckpt'], param_key_ae=param_key)
    with torch.no_grad():
        return float(loss(tensor(case['sr']), tensor(case['hr'])))


def test_printed_figures_equal_aesop_loss_l1_and_psnr_and_panel_is_written(case, capsys):
    out = str(case['root'] / 'panel.png')
    got = run_inspect(capsys, '--ae', case['ckpt'], '--ae-opt', case['ae_opt'], '--sr', case['sr'], '--hr',
                      case['hr'], '--out', out)
    # default key: params_ema, as BasicSR's loaders prefer it
    assert got['AESOP'] == pytest.approx(expected_aesop(case, 'params_ema'), rel=1e-6)
    assert got['AESOP'] != pytest.approx(expected_aesop(case, 'params'), rel=1e-3)
    sr, hr = tensor(case['sr']), tensor(case['hr'])
    assert got['L1'] == pytest.approx(float((sr - hr).abs().mean()), rel=1e-6)
    psnr = calculate_psnr(cv2.imread(case['sr']), cv2.imread(case['hr']), crop_border=4, test_y_channel=True)
    assert got['PSNR'] == pytest.approx(psnr, abs=1e-4)

    panel = cv2.imread(out)
    hw = cv2.imread(case['hr']).shape[:2]
    assert panel.shape[:2] == panels.panel_size(hw, columns=3)
    top, w, step = panels.HEADER_HEIGHT, hw[1], hw[1] + panels.GAP
    np.testing.assert_array_equal(panel[top:, :w], cv2.imread(case['sr']))
    # the third tile is the AESOP error map of this very auto-encoder, on the shared colour scale
    loss = AESOPLoss(TINY_AE, pretrain_network_ae=case['ckpt'], param_key_ae='params_ema')
    with torch.no_grad():
        ae_map = (loss.autoencoder(sr) - loss.autoencoder(hr)).abs().mean(dim=1)[0].double().numpy()
    np.testing.assert_array_equal(panel[top:, 2 * step:2 * step + w], panels.colorize(ae_map))
    np.testing.assert_array_equal(panel[top:, step:step + w], panels.colorize((sr - hr).abs().mean(dim=1)[0].numpy()))


def test_aesop_figure_follows_the_colour_channels(case, capsys, tmp_path):
    """The images are read as RGB for the AE: the same pair with its channels reversed gives another AESOP
    figure (the AE is not colour-symmetric), equal to AESOPLoss on the reversed pair; L1 and PSNR-Y see the
    reversal too (Y weights R and B differently) but L1 only through the colours it averages."""
    base = ['--ae', case['ckpt'], '--ae-opt', case['ae_opt'], '--param-key', 'params_ema']
    original = run_inspect(capsys, *base, '--sr', case['sr'], '--hr', case['hr'], '--out', str(tmp_path / 'a.png'))
    swapped = {}
    for key in ('sr', 'hr'):
        swapped[key] = str(tmp_path / f'{key}_rgb_as_bgr.png')
        cv2.imwrite(swapped[key], cv2.imread(case[key])[..., ::-1])
    reversed_ = run_inspect(capsys, *base, '--sr', swapped['sr'], '--hr', swapped['hr'], '--out',
                            str(tmp_path / 'b.png'))
    loss = AESOPLoss(TINY_AE, pretrain_network_ae=case['ckpt'], param_key_ae='params_ema')
    with torch.no_grad():
        expected = float(loss(tensor(swapped['sr']), tensor(swapped['hr'])))
    assert reversed_['AESOP'] == pytest.approx(expected, rel=1e-6)
    assert abs(reversed_['AESOP'] - original['AESOP']) > 1e-3 * original['AESOP']
    assert reversed_['L1'] == pytest.approx(original['L1'], rel=1e-6)  # a channel permutation keeps mean |SR-HR|


def test_ae_opt_as_inline_json_or_aesop_loss_option_file(case, capsys, tmp_path):
    base = ['--ae', case['ckpt'], '--sr', case['sr'], '--hr', case['hr'], '--param-key', 'params']
    expected = expected_aesop(case, 'params')
    inline = run_inspect(capsys, *base, '--ae-opt', json.dumps(TINY_AE), '--out', str(tmp_path / 'a.png'))
    assert inline['AESOP'] == pytest.approx(expected, rel=1e-6)
    sr_run = tmp_path / 'gan.yml'
    sr_run.write_text(yaml.safe_dump({'train': {'pixel_opt': {'type': 'AESOPLoss', 'autoencoder': TINY_AE}}}))
    from_loss = run_inspect(capsys, *base, '--ae-opt', str(sr_run), '--out', str(tmp_path / 'b.png'))
    assert from_loss['AESOP'] == pytest.approx(expected, rel=1e-6)


def test_console_entry_point_runs_as_a_module(case, tmp_path):
    proc = run_module('aesop_basicsr.inspect_loss', '--ae', case['ckpt'], '--ae-opt', case['ae_opt'], '--sr',
                      case['sr'], '--hr', case['hr'], cwd=str(tmp_path))
    assert figures(proc.stdout)['AESOP'] == pytest.approx(expected_aesop(case, 'params_ema'), rel=1e-6)
    assert (tmp_path / 'sr_aesop_errors.png').is_file()  # default --out


def fails(capsys, case, match, **override):
    args = {'--ae': case['ckpt'], '--ae-opt': case['ae_opt'], '--sr': case['sr'], '--hr': case['hr'],
            '--out': str(case['root'] / 'never.png')}
    args.update(override)
    with pytest.raises(SystemExit, match=match) as err:
        inspect_loss.main([item for pair in args.items() for item in pair])
    assert str(err.value).startswith('aesop-inspect: error:')
    assert not osp.exists(case['root'] / 'never.png')


def test_mismatched_sizes(case, capsys, tmp_path):
    small = str(tmp_path / 'small.png')
    cv2.imwrite(small, cv2.imread(case['sr'])[:64, :96])
    fails(capsys, case, r'--sr: .*small\.png.* is 64x96 but must be 128x128', **{'--sr': small})


def test_unreadable_images(case, capsys, tmp_path):
    text = tmp_path / 'not_an_image.png'
    text.write_text('hello')
    fails(capsys, case, r'--hr: .*not_an_image\.png.* not an image', **{'--hr': str(text)})
    fails(capsys, case, r'--sr: .*missing\.png.* missing', **{'--sr': str(tmp_path / 'missing.png')})


def test_sizes_the_autoencoder_scale_does_not_divide(case, capsys, tmp_path):
    odd_sr, odd_hr = str(tmp_path / 'sr.png'), str(tmp_path / 'hr.png')
    cv2.imwrite(odd_sr, cv2.imread(case['sr'])[:126, :126])
    cv2.imwrite(odd_hr, cv2.imread(case['hr'])[:126, :126])
    fails(capsys, case, r'126x126.*scale 4', **{'--sr': odd_sr, '--hr': odd_hr})


def test_autoencoder_options_that_do_not_fit_the_checkpoint(case, capsys, tmp_path):
    other = dict(TINY_AE, num_block=2)
    fails(capsys, case, r'--ae .*net_g_latest\.pth.*does not fit', **{'--ae-opt': json.dumps(other)})
    x2 = dict(TINY_AE, scale=2, num_feat=4, decoder=dict(TINY_AE['decoder'], scale=2))
    fails(capsys, case, r'--ae .*does not fit', **{'--ae-opt': json.dumps(x2)})


def test_ae_opt_without_an_autoencoder(case, capsys, tmp_path):
    plain = tmp_path / 'srmodel.yml'
    plain.write_text(yaml.safe_dump({'network_g': {'type': 'RRDBNet'}, 'train': {'pixel_opt': {'type': 'L1Loss'}}}))
    fails(capsys, case, r'--ae-opt: no AESOPAutoEncoder in .*srmodel\.yml', **{'--ae-opt': str(plain)})
    fails(capsys, case, r'--ae-opt: .*neither an existing option file', **{'--ae-opt': 'nope.yml'})
    fails(capsys, case, r"--param-key: 'params_x' is not in", **{'--param-key': 'params_x'})
    fails(capsys, case, r'--ae: .*absent\.pth.* does not exist', **{'--ae': str(tmp_path / 'absent.pth')})
