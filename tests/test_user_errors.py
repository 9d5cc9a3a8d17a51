"""Bad input fails before training with one message naming the option key and the file or value; every
console command prints a user error as one line and exits with status 2, without a traceback.

Real processes for aesop-train and aesop-convert (started together, checked once per module); the other
commands' ``main`` is called in this process.
"""
import math
import re
import subprocess
import sys

import pytest
import torch
import yaml
from basicsr.losses import build_loss

from aesop_basicsr import convert, demo, evaluate, inspect_loss, prepare
from aesop_basicsr import test as aesop_test
from aesop_basicsr import train as aesop_train
from aesop_basicsr.utils.checkpoint import flatten_for_safetensors, save_safetensors
from aesop_basicsr.utils.cli import UserError, command, raised_by_our_check
from tiny_training import TINY_AE, esrgan_aesop_options, process_env, write_autoencoder, write_yaml

TRACEBACK = 'Traceback (most recent call last)'
# the base type each error is raised as; the class is checked by name, as test_registration reloads our modules
BASES = {'OptionError': ValueError, 'MissingFileError': FileNotFoundError, 'CheckpointError': ValueError,
         'DataError': ValueError}


class raises:
    """``pytest.raises`` for one of aesop_basicsr.utils.cli's UserError classes, named as a string."""

    def __init__(self, kind: str, match: str) -> None:
        self.kind, self.context = kind, pytest.raises(BASES[kind], match=match)

    def __enter__(self):
        self.info = self.context.__enter__()
        return self.info

    def __exit__(self, *exc):
        handled = self.context.__exit__(*exc)
        names = [cls.__name__ for cls in type(self.info.value).__mro__]
        assert self.kind in names and 'UserError' in names, names
        return handled


def aesop_loss(**kwargs):
    return build_loss(dict(type='AESOPLoss', autoencoder=kwargs.pop('autoencoder', TINY_AE), **kwargs))


@pytest.fixture(scope='module')
def ae_file(tmp_path_factory) -> str:
    return write_autoencoder(str(tmp_path_factory.mktemp('ae') / 'ae.pth'))


@pytest.fixture
def options(tmp_path, paired_x4, ae_file):
    """Write a tiny ESRGAN + AESOP option file with ``changes`` applied; return its path."""

    def write(name='o.yml', **changes) -> str:
        opt = esrgan_aesop_options('bad_input', paired_x4, ae_file, total_iter=2)
        opt['num_gpu'] = 0
        for keys, value in changes.items():
            node = opt
            *parents, last = keys.split('__')
            for key in parents:
                node = node[key]
            node[last] = value
        return write_yaml(str(tmp_path / name), opt)

    return write


def parse(monkeypatch, root, opt_file, *flags):
    monkeypatch.setattr(sys, 'argv', ['aesop-train', '-opt', opt_file, *flags])
    return aesop_train.parse_checked_options(str(root), True)[0]


# ---- option files -----------------------------------------------------------------------------
def test_option_file_that_is_not_yaml(tmp_path, monkeypatch):
    bad = tmp_path / 'bad.yml'
    bad.write_text('name: x\ntrain: [unclosed\n  scale: 4\n')
    with raises('OptionError', match=rf"-opt: '{re.escape(str(bad))}' is not a valid YAML option file "
                                     r'\(line \d+, column \d+\)'):
        parse(monkeypatch, tmp_path, str(bad))
    text = tmp_path / 'list.yml'
    text.write_text('- just\n- a list\n')
    with raises('OptionError', match=r"list.yml' is not a YAML option file: it holds a list"):
        parse(monkeypatch, tmp_path, str(text))
    with raises('MissingFileError', match=r"-opt: option file '.*nope.yml' does not exist"):
        parse(monkeypatch, tmp_path, str(tmp_path / 'nope.yml'))


def test_option_file_missing_a_key_basicsr_needs(tmp_path, monkeypatch):
    file = tmp_path / 'o.yml'
    file.write_text(yaml.safe_dump({'name': 'x', 'datasets': {}, 'path': {}}))
    with raises('OptionError', match=r"o.yml' has no num_gpu key"):
        parse(monkeypatch, tmp_path, str(file))


def test_autoencoder_of_unknown_type(tmp_path, monkeypatch, options):
    opt_file = options(train__pixel_opt__autoencoder=dict(TINY_AE, type='NoSuchAutoEncoder'))
    with raises('OptionError', match=r"train:pixel_opt:autoencoder:type is 'NoSuchAutoEncoder' in .*o.yml, "
                                     r'which is not a registered architecture'):
        parse(monkeypatch, tmp_path, opt_file)


def test_gt_patches_not_divisible_by_the_scale(tmp_path, monkeypatch, options):
    with raises('OptionError', match=r'datasets:train:gt_size is 130 in .*o.yml, not divisible by scale: 4; '
                                     r'use a multiple of 4, e.g. 128'):
        parse(monkeypatch, tmp_path, options(datasets__train__gt_size=130))
    # an x4 auto-encoder in an x2 run (tests/test_field_errors.py: as a process, and the other way round)
    opt_file = options(scale=2, datasets__train__gt_size=66)
    with raises('OptionError', match=r'train:pixel_opt:autoencoder:scale is 4 but scale is 2 in .*o.yml'):
        parse(monkeypatch, tmp_path, opt_file)


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a host without CUDA')
def test_num_gpu_on_a_host_without_cuda(tmp_path, monkeypatch, options):
    with raises('OptionError', match=r'num_gpu: 1 in .*o.yml asks for CUDA, but this host has no CUDA '
                                     r'device; set num_gpu: 0'):
        parse(monkeypatch, tmp_path, options(num_gpu=1))


def test_dataset_folder_that_does_not_exist(tmp_path, monkeypatch, options):
    missing = str(tmp_path / 'no_such_folder')
    with raises('MissingFileError', match=rf"datasets:val:dataroot_lq: '{re.escape(missing)}' \(in .*o.yml\) "
                                          r'does not exist'):
        parse(monkeypatch, tmp_path, options(datasets__val__dataroot_lq=missing))


def test_force_yml_naming_an_option_that_does_not_exist(tmp_path, monkeypatch, options):
    with raises('OptionError', match=r"--force_yml: 'trian:total_iter=4': the option file has no trian"):
        parse(monkeypatch, tmp_path, options(), '--force_yml', 'trian:total_iter=4')


# ---- checkpoints ------------------------------------------------------------------------------
def test_pretrain_network_ae_pointing_at_a_folder(tmp_path):
    with raises('CheckpointError', match=rf"AESOPLoss.pretrain_network_ae: '{re.escape(str(tmp_path))}' is a "
                                         r'folder, not a checkpoint file'):
        aesop_loss(pretrain_network_ae=str(tmp_path))


def test_empty_checkpoint_file(tmp_path):
    empty = tmp_path / 'ae.pth'
    empty.write_bytes(b'')
    with raises('CheckpointError', match=r"AESOPLoss.pretrain_network_ae: '.*ae.pth' is empty \(0 bytes\)"):
        aesop_loss(pretrain_network_ae=str(empty))


def test_safetensors_file_missing_a_tensor(tmp_path, ae_file):
    flat = flatten_for_safetensors(torch.load(ae_file, weights_only=True), ae_file)
    dropped = 'params_ema.body.0.rdb3.conv5.bias'
    del flat[dropped]
    path = str(tmp_path / 'ae.safetensors')
    save_safetensors(flat, path)
    with raises('CheckpointError', match=r"AESOPLoss.pretrain_network_ae: '.*ae.safetensors' does not fit the "
                                         r'configured network: 1 missing tensors '
                                         r"\(first: \['body.0.rdb3.conv5.bias'\]\)"):
        aesop_loss(pretrain_network_ae=path)
    assert aesop_loss(pretrain_network_ae=path, strict_load_ae=False)  # and loads when allowed to be partial


def test_autoencoder_checkpoint_for_scale_2_used_at_scale_4(tmp_path):
    x2 = dict(TINY_AE, scale=2, num_feat=12, decoder=dict(TINY_AE['decoder'], scale=2))
    path = write_autoencoder(str(tmp_path / 'ae_x2.pth'), x2)
    x4 = dict(TINY_AE, num_feat=48)
    with raises('CheckpointError', match=r"AESOPLoss.pretrain_network_ae: '.*ae_x2.pth' does not fit the "
                                         r'configured auto-encoder: it holds one for scale 2, but the configured one '
                                         r'has scale 4'):
        aesop_loss(autoencoder=x4, pretrain_network_ae=path)
    assert aesop_loss(autoencoder=x2, pretrain_network_ae=path)


# ---- data -------------------------------------------------------------------------------------
@pytest.mark.parametrize('where, value', [('target', math.nan), ('target', math.inf), ('pred', math.nan)])
def test_nan_or_inf_in_the_batch_is_named_not_trained_on(ae_file, where, value):
    loss = aesop_loss(pretrain_network_ae=ae_file)
    pred, target = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    (target if where == 'target' else pred).data[1, 0, 5, 7] = value
    expected = 'target \\(the GT batch\\)' if where == 'target' else 'pred \\(the network output\\)'
    with raises('DataError', match=rf'AESOPLoss: {expected} contains NaN or Inf values'):
        loss(pred, target)
    clean = torch.rand(2, 3, 32, 32)
    assert torch.isfinite(loss(clean, torch.rand(2, 3, 32, 32)))  # the check lets finite batches through


# ---- every command: status 2, one line, no traceback --------------------------------------------
@pytest.fixture(scope='module')
def processes(tmp_path_factory):
    """aesop-train with a placeholder and aesop-convert of a missing file, started at once."""
    work = tmp_path_factory.mktemp('commands')
    placeholder = work / 'train.yml'
    placeholder.write_text(yaml.safe_dump({'name': 'x', 'num_gpu': 0, 'datasets': {}, 'logger': {},
                                           'path': {'pretrain_network_g': '<REQUIRED: ESRGAN PSNR model>'}}))
    missing = str(work / 'missing.pth')
    commands = {
        'train': ['aesop_basicsr.train', '-opt', str(placeholder)],
        'convert': ['aesop_basicsr.convert', missing],
    }
    started = {name: subprocess.Popen([sys.executable, '-m', *cmd], cwd=str(work), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=process_env())
               for name, cmd in commands.items()}
    done = {}
    for name, proc in started.items():
        out, err = proc.communicate(timeout=600)
        done[name] = (proc.returncode, out, err)
    return dict(done, placeholder=str(placeholder), missing=missing)


def test_aesop_train_placeholder_exits_2_with_one_message(processes):
    status, _, err = processes['train']
    assert status == 2 and TRACEBACK not in err, err
    assert f'aesop-train: error: Set these options in {processes["placeholder"]} before running' in err
    assert '  path:pretrain_network_g: <REQUIRED: ESRGAN PSNR model>' in err


def test_aesop_convert_missing_file_exits_2_with_one_message(processes):
    status, _, err = processes['convert']
    assert status == 2 and TRACEBACK not in err, err
    assert f"aesop-convert: error: CKPT: checkpoint file '{processes['missing']}' does not exist." in err
    assert 'AESOP_DEBUG=1' in err  # says how to see more


def run_main(capsys, main, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    captured = capsys.readouterr()
    return exit_.value.code, captured.err


def test_aesop_test_non_yaml_exits_2(tmp_path, capsys, monkeypatch):
    not_yaml = tmp_path / 'test.yml'
    not_yaml.write_text('name: [x\n')
    monkeypatch.setattr(sys, 'argv', ['aesop-test', '-opt', str(not_yaml)])
    status, err = run_main(capsys, lambda argv: aesop_test.main(str(tmp_path)), None)
    assert status == 2 and TRACEBACK not in err, err
    assert f"aesop-test: error: -opt: '{not_yaml}' is not a valid YAML option file" in err


@pytest.mark.parametrize('how', ['env', 'flag'])
def test_debug_shows_the_traceback_of_a_user_error(tmp_path, capsys, monkeypatch, how):
    missing = str(tmp_path / 'missing.pth')
    argv = [missing]
    if how == 'env':
        monkeypatch.setenv('AESOP_DEBUG', '1')
    else:
        argv.append('--debug')  # taken off before the command parses its arguments
    status, err = run_main(capsys, convert.main, argv)
    assert status == 2 and TRACEBACK in err and 'MissingFileError' in err
    assert f"aesop-convert: error: CKPT: checkpoint file '{missing}' does not exist." in err


def test_aesop_inspect_user_error_exits_2(tmp_path, capsys):
    missing = str(tmp_path / 'ae.pth')
    status, err = run_main(capsys, inspect_loss.main, ['--ae', missing, '--ae-opt', '{type: AESOPAutoEncoder}',
                                                       '--sr', missing, '--hr', missing])
    assert status == 2 and TRACEBACK not in err, err
    assert '--ae' in err and missing in err and err.strip().startswith('aesop-inspect: error:')


def test_aesop_prepare_user_error_exits_2(tmp_path, capsys):
    missing = str(tmp_path / 'no_hr')
    status, err = run_main(capsys, prepare.main, ['--input', missing, '--output', str(tmp_path / 'out')])
    assert status == 2 and TRACEBACK not in err, err
    assert f"aesop-prepare: error: --input: '{missing}' is not a folder." in err


def test_aesop_eval_user_error_exits_2(tmp_path, capsys):
    missing = str(tmp_path / 'sr')
    status, err = run_main(capsys, evaluate.main, ['--sr', missing, '--hr', str(tmp_path)])
    assert status == 2 and TRACEBACK not in err, err
    assert f"aesop-eval: error: --sr: '{missing}' is not a folder." in err


def test_aesop_demo_user_error_exits_2(tmp_path, capsys):
    file = tmp_path / 'a_file'
    file.write_text('x')
    status, err = run_main(capsys, demo.main, ['--out', str(file)])
    assert status == 2 and TRACEBACK not in err, err
    assert f"aesop-demo: --out '{file}' is a file, not a folder." in err


def test_aesop_convert_refuses_to_overwrite(tmp_path, capsys, ae_file):
    existing = tmp_path / 'ae.safetensors'
    existing.write_bytes(b'keep me')
    status, err = run_main(capsys, convert.main, [ae_file, '-o', str(existing)])
    assert status == 2 and TRACEBACK not in err
    assert f"--out: '{existing}' exists; pass --overwrite to replace it." in err
    assert existing.read_bytes() == b'keep me'


# ---- programming errors still raise ---------------------------------------------------------------
def test_programming_errors_are_not_turned_into_user_errors():
    @command('aesop-x')
    def main_with_a_bug(argv=None):
        return int('not a number')  # a ValueError, but not from one of our checks

    with pytest.raises(ValueError, match='invalid literal'):
        main_with_a_bug([])

    @command('aesop-x')
    def main_with_a_lookup_bug(argv=None):
        return aesop_train.network_files({'path': {}, 'network_g': {}}, 1)  # KeyError from opt['path']['models']

    with pytest.raises(KeyError, match='models'):
        main_with_a_lookup_bug([])


def test_only_raise_statements_in_the_package_count_as_checks(tmp_path):
    with pytest.raises(ValueError) as ours:
        aesop_loss(criterion='l3')  # raise ValueError('AESOPLoss: criterion=...') in the package
    assert raised_by_our_check(ours.value) and not isinstance(ours.value, UserError)
    with pytest.raises(KeyError) as lookup:
        aesop_train.network_files({'path': {}, 'network_g': {}}, 1)
    assert not raised_by_our_check(lookup.value)


def test_launcher_pytorch_outside_torchrun(tmp_path, monkeypatch, options):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr('basicsr.utils.options.init_dist', None)  # restored after; the parser installs its own
    with raises('OptionError', match=r'--launcher pytorch: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set; start '
                                     r'the command with torchrun'):
        parse(monkeypatch, tmp_path, options(), '--launcher', 'pytorch')
