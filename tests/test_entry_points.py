"""The train/test entry points' own additions to BasicSR's option parsing."""
import os
import sys
from os import path as osp

import basicsr.utils.options
import pytest
import yaml
from basicsr.utils import make_exp_dirs

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


def test_experiments_root_is_the_folder_above_the_run_as_basicsr_master_reads_it(tmp_path, monkeypatch):
    chosen = tmp_path / 'elsewhere' / 'runs'
    opt_file = write_options(tmp_path / 'o.yml', path={'experiments_root': str(chosen), 'results_root': str(chosen)})
    opt = parse(monkeypatch, opt_file, tmp_path)
    run = chosen / 'tiny'
    assert opt['path']['experiments_root'] == str(run)
    assert opt['path']['models'] == str(run / 'models')
    assert opt['path']['training_states'] == str(run / 'training_states')
    assert opt['path']['log'] == str(run)
    assert opt['path']['visualization'] == str(run / 'visualization')
    test_opt = parse(monkeypatch, opt_file, tmp_path, False)
    assert test_opt['path']['results_root'] == test_opt['path']['log'] == str(run)
    # the installed BasicSR itself: GitHub master (basicsr-fixed) puts the run in the same folder, 1.4.2
    # ignores the key (experiments/<name> under the root)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', opt_file])
    plain = basicsr.utils.options.parse_options(str(tmp_path), is_train=True)[0]['path']['experiments_root']
    assert plain in (str(run), str(tmp_path / 'experiments' / 'tiny')), plain


def test_a_fresh_run_archives_its_own_folder_only(tmp_path, monkeypatch):
    """BasicSR renames an existing run folder to <name>_archived_<time>; the user's folder above it stays."""
    chosen = tmp_path / 'runs'
    (chosen / 'tiny' / 'models').mkdir(parents=True)  # left by an earlier run, e.g. python -m basicsr.train
    (chosen / 'notes.txt').write_text('mine')
    (chosen / 'other_run').mkdir()
    opt = parse(monkeypatch, write_options(tmp_path / 'o.yml', path={'experiments_root': str(chosen)}), tmp_path)
    make_exp_dirs(opt)  # BasicSR's own, as train_pipeline calls it for a fresh start
    archived = [name for name in os.listdir(chosen) if name.startswith('tiny_archived_')]
    assert len(archived) == 1 and osp.isdir(chosen / archived[0] / 'models')
    assert sorted(os.listdir(chosen)) == sorted(['notes.txt', 'other_run', 'tiny', archived[0]])
    assert sorted(os.listdir(chosen / 'tiny')) == ['models', 'training_states', 'visualization']
    assert (chosen / 'notes.txt').read_text() == 'mine' and sorted(os.listdir(tmp_path)) == ['o.yml', 'runs']


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
