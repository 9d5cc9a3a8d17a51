"""The train/test entry points' own additions to BasicSR's option parsing."""
import sys

import pytest
import yaml

from aesop_basicsr.train import latest_training_state, parse_checked_options


def write_options(file, **extra) -> str:
    opt = {'name': 'tiny', 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
           'datasets': {}, 'path': {}, 'logger': {'print_freq': 1, 'save_checkpoint_freq': 1}}
    opt.update(extra)
    file.write_text(yaml.safe_dump(opt))
    return str(file)


def parse(monkeypatch, opt_file, root, is_train=True, *flags):
    monkeypatch.setattr(sys, 'argv', ['aesop-train', '-opt', opt_file, *flags])
    return parse_checked_options(str(root), is_train)[0]


def test_runs_go_under_the_current_root_by_default(tmp_path, monkeypatch):
    opt = parse(monkeypatch, write_options(tmp_path / 'o.yml'), tmp_path)
    assert opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'tiny')
    assert opt['path']['training_states'] == str(tmp_path / 'experiments' / 'tiny' / 'training_states')


def test_option_file_can_choose_the_run_folder(tmp_path, monkeypatch):
    chosen = tmp_path / 'elsewhere' / 'run1'
    opt_file = write_options(tmp_path / 'o.yml', path={'experiments_root': str(chosen), 'results_root': str(chosen)})
    opt = parse(monkeypatch, opt_file, tmp_path)
    assert opt['path']['experiments_root'] == str(chosen)
    assert opt['path']['models'] == str(chosen / 'models')
    assert opt['path']['training_states'] == str(chosen / 'training_states')
    assert opt['path']['log'] == str(chosen)
    assert parse(monkeypatch, opt_file, tmp_path, False)['path']['results_root'] == str(chosen)


def test_placeholders_fail_naming_every_key_even_after_force_yml(tmp_path, monkeypatch):
    opt_file = write_options(
        tmp_path / 'o.yml', path={'pretrain_network_g': '<REQUIRED: ESRGAN PSNR model>'},
        datasets={'train': {'name': 'DF2K', 'type': 'PairedImageDataset', 'dataroot_gt': '<REQUIRED: HR folder>'}})
    with pytest.raises(ValueError, match=r'Set these options in .*o.yml') as err:
        parse(monkeypatch, opt_file, tmp_path)
    assert '  path:pretrain_network_g: <REQUIRED: ESRGAN PSNR model>' in str(err.value)
    assert '  datasets:train:dataroot_gt: <REQUIRED: HR folder>' in str(err.value)
    with pytest.raises(ValueError) as err:
        parse(monkeypatch, opt_file, tmp_path, True, '--force_yml', 'path:pretrain_network_g=/tmp/g.pth')
    assert 'pretrain_network_g' not in str(err.value) and 'dataroot_gt' in str(err.value)


def test_latest_training_state_is_the_highest_iteration_not_the_newest_name(tmp_path):
    assert latest_training_state(str(tmp_path / 'missing')) is None
    for name in ('5.state', '40.state', '100.state', 'notes.txt'):
        (tmp_path / name).write_text('')
    assert latest_training_state(str(tmp_path)) == str(tmp_path / '100.state')
