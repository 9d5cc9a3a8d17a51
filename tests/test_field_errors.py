"""Bad input from the field, each tried as a user would, as a real process: named in one line before training starts.

The processes start together, once per module (each costs a torch + BasicSR import):

- ``aesop-train`` on a training folder with a 0-byte HR image, an HR image that is not 4x its LR, and
  LR images smaller than the LR patch (situations 2-4: all three named at once, nothing trained);
- ``aesop-train``, ``aesop-check`` and ``python -m basicsr.train`` (with the installed hook) on an
  option file whose YAML runs a command (situation 8: the command never runs);
- one ``aesop-check`` over four option files: that one, the broken data, an x4 auto-encoder in an x2 run
  (situation 1) and Real-ESRGAN's model on a host without CUDA (situation 7), one report each;
  ``aesop-train`` runs the same checks, which is asserted in-process for 1 and 7;
- ``aesop-train`` on data with an image truncated after its header: it passes the header check and
  fails to decode at the first validation, after the checkpoint of iteration 2: named with its
  dataset key, and that checkpoint is what ``--auto_resume`` takes.
"""
import os
import re
import shutil
import subprocess
import sys
from collections import OrderedDict
from os import path as osp

import cv2
import pytest
import torch
import yaml
from basicsr.models import build_model

from aesop_basicsr import train as aesop_train
from aesop_basicsr.check import check_option_file
from aesop_basicsr.data.dataset_check import DataCheckError
from aesop_basicsr.utils.cli import OptionError
from aesop_basicsr.utils.options import check_cuda_only_model
from aesop_basicsr.utils.distributed import accept_local_rank
from aesop_basicsr.utils.safe_yaml import CheckedOptionLoader, CodeTagError, OptionLoader
from aesop_basicsr.utils.sample_data import PHOTO_NAMES, bicubic_downscale, load_photo, write_paired_dataset
from tiny_training import (NET_D, TINY_AE, esrgan_aesop_options, process_env, sr_model_options, train_command,
                           write_autoencoder, write_yaml)

TRACEBACK = 'Traceback (most recent call last)'
CODE_IN_YAML = '!!python/object/apply:os.system ["touch {marker}"]'
def copy_pairs(paired: dict, root: str) -> dict:
    folders = {role: osp.join(root, osp.basename(folder)) for role, folder in paired.items()}
    for role, folder in paired.items():
        shutil.copytree(folder, folders[role])
    return folders


def write_pair(folders: dict, name: str, hr_size: int, lr_size: int) -> None:
    photo = load_photo('coffee')
    cv2.imwrite(osp.join(folders['gt'], name), photo[:hr_size, :hr_size])
    cv2.imwrite(osp.join(folders['lq'], name), bicubic_downscale(photo[:lr_size * 4, :lr_size * 4], 4))


def code_running_option_file(path: str, marker: str) -> str:
    with open(path, 'w') as f:
        f.write(f'name: {CODE_IN_YAML.format(marker=marker)}\nnum_gpu: 0\ndatasets: {{}}\npath: {{}}\n')
    return path


@pytest.fixture(scope='module')
def field(tmp_path_factory, paired_x4) -> dict:
    """Every situation's files, and the processes run on them (started at once)."""
    work = tmp_path_factory.mktemp('field')
    files = {}
    ae = write_autoencoder(str(work / 'ae_x4.pth'))

    # 1. x2 data and generator, an x4 auto-encoder, patches divisible by 4
    x2 = {'train': write_paired_dataset(str(work / 'x2'), scale=2, hr_size=64, names=PHOTO_NAMES[:2])}
    x2['val'] = x2['train']
    opt = esrgan_aesop_options('ae_x4_in_x2', x2, ae, total_iter=2)
    opt['scale'], opt['network_g']['scale'] = 2, 2
    opt['datasets']['train']['gt_size'] = 64
    files['ae_scale'] = write_yaml(str(work / 'ae_x4_in_x2.yml'), opt)

    # 2-4. one training folder with a 0-byte HR image, a 203 px HR for a 50 px LR, a 96 px HR (LR 24 < 128 / 4)
    train = copy_pairs(paired_x4['train'], str(work / 'field_data'))
    files['empty'] = osp.join(train['gt'], sorted(os.listdir(train['gt']))[0])
    open(files['empty'], 'wb').close()
    write_pair(train, 'hr203.png', 203, 50)
    write_pair(train, 'small.png', 96, 24)
    opt = sr_model_options('field_data', {'train': train, 'val': paired_x4['val']}, total_iter=2)
    opt['datasets']['train']['gt_size'] = 128
    files['train'] = train
    files['data'] = write_yaml(str(work / 'field_data.yml'), opt)

    # 7. Real-ESRGAN's paired-data fine-tune, num_gpu: 0
    opt = sr_model_options('realesrgan_cpu', paired_x4, total_iter=2)
    opt.update(model_type='RealESRGANModel', num_gpu=0, network_d=dict(NET_D), high_order_degradation=False)
    opt['datasets']['train']['type'] = 'RealESRGANPairedDataset'
    files['cuda_only'] = write_yaml(str(work / 'realesrgan_cpu.yml'), opt)

    # 8. an option file that runs a command, once per entry point (one marker each)
    for name in ('basicsr', 'train', 'check'):
        files[f'marker_{name}'] = str(work / f'marker_{name}')
        files[f'yaml_{name}'] = code_running_option_file(str(work / f'code_{name}.yml'), files[f'marker_{name}'])

    # an image truncated after its header, met at the first validation (after the checkpoint of iteration 2)
    val = copy_pairs(paired_x4['val'], str(work / 'val_data'))
    files['truncated'] = osp.join(val['gt'], sorted(os.listdir(val['gt']))[0])
    with open(files['truncated'], 'rb') as f:
        data = f.read()
    with open(files['truncated'], 'wb') as f:
        f.write(data[:len(data) // 2])
    opt = sr_model_options('decode_fails', {'train': paired_x4['train'], 'val': val}, total_iter=4, save_every=2,
                           val_every=2)
    opt['num_gpu'] = 0
    files['decode'] = write_yaml(str(work / 'decode_fails.yml'), opt)

    commands = {
        'data': train_command('-opt', files['data']),
        'basicsr_yaml': [sys.executable, '-m', 'basicsr.train', '-opt', files['yaml_basicsr']],
        'train_yaml': train_command('-opt', files['yaml_train']),
        # one check command over several option files: one line (or block) each
        'check': [sys.executable, '-m', 'aesop_basicsr.check', '-opt', files['yaml_check'], files['ae_scale'],
                  files['data'], files['cuda_only']],
        'decode': train_command('-opt', files['decode']),
    }
    started = {name: subprocess.Popen(cmd, cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=process_env()) for name, cmd in commands.items()}
    done = {}
    for name, proc in started.items():
        out, err = proc.communicate(timeout=600)
        done[name] = dict(status=proc.returncode, out=out, err=err)
    return dict(files, runs=done, work=str(work))


def error_lines(run: dict, prog: str = 'aesop-train') -> list:
    """The lines of a user error: exit status 2, no traceback; the error line and, for several problems, its items."""
    assert run['status'] == 2 and TRACEBACK not in run['err'], run['err'][-3000:]
    lines = run['err'].splitlines()
    first = [i for i, line in enumerate(lines) if line.startswith(f'{prog}: error:')]
    assert len(first) == 1, run['err']
    following = [line.strip() for line in lines[first[0] + 1:] if line.startswith('  ')]
    return [lines[first[0]]] + following


def check_reports(field: dict) -> dict:
    """The check command's report of each option file (it names the file): its error line and item lines."""
    run = field['runs']['check']
    assert run['status'] == 2 and TRACEBACK not in run['err'], run['err'][-3000:]
    reports = []
    for line in run['err'].splitlines():
        if line.startswith('aesop-check: error:'):
            reports.append([line])
        elif line.startswith('  ') and reports:
            reports[-1].append(line.strip())
    return {name: [report for report in reports if field[name] in report[0]] for name in
            ('yaml_check', 'ae_scale', 'data', 'cuda_only')}


def parse_with_aesop_train(monkeypatch, field: dict, opt_file: str):
    monkeypatch.setattr(sys, 'argv', ['aesop-train', '-opt', opt_file])
    return aesop_train.parse_checked_options(field['work'], True)


def refused_by_check_and_aesop_train(monkeypatch, field: dict, name: str, message: str) -> None:
    """The check command's process printed ``message`` for option file ``name``; aesop-train's parsing raises it."""
    assert check_reports(field)[name] == [['aesop-check: error: ' + message]]
    with pytest.raises(OptionError) as err:
        parse_with_aesop_train(monkeypatch, field, field[name])
    assert str(err.value) == message


def trained_nothing(field: dict, run: dict, name: str) -> bool:
    return 'iter:' not in run['out'] + run['err'] and not osp.exists(osp.join(field['work'], 'experiments', name))


def test_1_x4_autoencoder_in_an_x2_run(field, monkeypatch):
    message = (f"train:pixel_opt:autoencoder:scale is 4 but scale is 2 in {field['ae_scale']}: the auto-encoder's "
               'bottleneck must be the LR size; use an x2 auto-encoder (and its weights), or scale: 4 with x4 data and '
               'generator.')
    refused_by_check_and_aesop_train(monkeypatch, field, 'ae_scale', message)


def test_2_3_4_broken_training_images_are_all_named_before_training(field):
    run = field['runs']['data']
    gt, lq = field['train']['gt'], field['train']['lq']
    lines = [
        f"the data check found 3 problems in {field['data']}:",
        f"datasets:train:dataroot_gt: 1 of 6 GT images cannot be read: '{field['empty']}' (empty file, 0 bytes).",
        f"datasets:train: 1 of 5 pairs where GT is not exactly scale 4 x LQ: '{gt}/hr203.png' 203x203, "
        f"LQ '{lq}/hr203.png' 50x50 (x4: 200x200).",
        'datasets:train: 1 of 5 pairs where LQ is smaller than the LQ patch 32x32 (gt_size 128 / scale 4): '
        f"'{lq}/small.png' 24x24."]
    assert error_lines(run) == ['aesop-train: error: ' + lines[0]] + lines[1:]
    assert trained_nothing(field, run, 'field_data')
    assert check_reports(field)['data'] == [['aesop-check: error: ' + lines[0]] + lines[1:]]


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a host without CUDA')
def test_7_cuda_only_model_on_a_host_without_cuda(field, monkeypatch):
    message = (f"model_type: RealESRGANModel in {field['cuda_only']} needs CUDA (Real-ESRGAN's degradation pipeline "
               '(DiffJPEG, USMSharp, the training pair queue) is put on the GPU with .cuda()), and this host has none; '
               'run it on a CUDA host, or train on CPU from prepared LR/HR pairs (aesop-prepare, PairedImageDataset) '
               'with model_type: ESRGANModel (SRModel for the PSNR stage).')
    refused_by_check_and_aesop_train(monkeypatch, field, 'cuda_only', message)


def test_8_option_file_code_never_runs_through_any_entry_point(field, tmp_path):
    # what the file does where nothing guards: BasicSR's own loader runs the command
    import basicsr.utils.options as basicsr_options
    marker = str(tmp_path / 'ran')
    with open(code_running_option_file(str(tmp_path / 'code.yml'), marker)) as f:
        yaml.load(f, Loader=basicsr_options.ordered_yaml.__wrapped__()[0])
    assert osp.exists(marker)

    for name in ('basicsr', 'train', 'check'):
        assert not osp.exists(field[f'marker_{name}']), name
    basicsr_run = field['runs']['basicsr_yaml']
    assert basicsr_run['status'] != 0
    assert basicsr_run['err'].rstrip().splitlines()[-2:] == [
        'aesop_basicsr.utils.safe_yaml.CodeTagError: the tag !!python/object/apply:os.system would build a Python '
        'object (it could run code); option files may hold plain YAML only',
        f'  in "{field["yaml_basicsr"]}", line 1, column 7']
    refusal = ("-opt: '{}' line 1, column 7: the tag !!python/object/apply:os.system would build a Python object (it "
               'could run code); refused: option files may hold plain YAML only.')
    assert error_lines(field['runs']['train_yaml']) == ['aesop-train: error: ' + refusal.format(field['yaml_train'])]
    assert check_reports(field)['yaml_check'] == [['aesop-check: error: ' + refusal.format(field['yaml_check'])]]


def test_image_truncated_after_the_check_is_named_with_its_key_and_the_state_is_kept(field):
    run = field['runs']['decode']
    assert 'Data check (headers): 12 images of 2 datasets in' in run['out']  # its header is intact
    assert error_lines(run) == [
        f"aesop-train: error: datasets:val: '{field['truncated']}' cannot be decoded (OpenCV cannot decode it: "
        'truncated or damaged); stopped. Replace or remove the file (a training run resumes from its last saved '
        'state with --auto_resume), or set datasets:val:on_unreadable_image: skip to skip such images with a warning.']
    exp = osp.join(field['work'], 'experiments', 'decode_fails')
    log = open([osp.join(exp, n) for n in os.listdir(exp) if n.endswith('.log')][0]).read()
    assert [int(i) for i in re.findall(r'iter:\s*(\d+), lr:', log)] == [1, 2]
    opt = {'path': {'training_states': osp.join(exp, 'training_states'), 'models': osp.join(exp, 'models')},
           'network_g': {}, 'rank': 0, 'num_gpu': 0, 'auto_resume': True}
    state_path, state = aesop_train.newest_usable_training_state(opt)  # what --auto_resume takes
    assert (osp.basename(state_path), state['iter']) == ('2.state', 2)
    # the one-off deep check finds it before training
    with pytest.raises(DataCheckError, match=re.escape(f"'{field['truncated']}' (OpenCV cannot decode it")):
        check_option_file(field['decode'], 'full')


# ---- the same checks in-process ---------------------------------------------------------------------
def test_x2_autoencoder_in_an_x4_run_and_in_our_models_before_anything_is_built(field, monkeypatch):
    with open(field['ae_scale']) as f:
        opt = yaml.safe_load(f)
    opt['scale'], opt['network_g']['scale'] = 4, 4
    opt['train']['pixel_opt']['autoencoder'] = dict(TINY_AE, scale=2, decoder=dict(TINY_AE['decoder'], scale=2))
    opt_file = write_yaml(osp.join(field['work'], 'ae_x2_in_x4.yml'), opt)
    expected = r'train:pixel_opt:autoencoder:scale is 2 but scale is 4'
    with pytest.raises(OptionError, match=expected + ' in .*ae_x2_in_x4.yml'):
        parse_with_aesop_train(monkeypatch, field, opt_file)
    # BasicSR's own option parsing (the installed hook's loader) and our models catch it too
    with pytest.raises(OptionError, match=expected + ' in .*ae_x2_in_x4.yml'), open(opt_file) as f:
        yaml.load(f, Loader=CheckedOptionLoader)
    built = []
    monkeypatch.setattr('basicsr.models.base_model.BaseModel.__init__', lambda self, opt: built.append(opt))
    ldl = dict(opt, model_type='ESRGANLDLModel', is_train=True, dist=False, rank=0, world_size=1)
    with pytest.raises(OptionError, match=expected):
        build_model(ldl)
    ae_model = dict(ldl, model_type='AESOPAEModel', network_g=dict(TINY_AE, scale=2,
                                                                   decoder=dict(TINY_AE['decoder'], scale=2)),
                    train=dict(ldl['train'], pixel_opt={'type': 'L1Loss'}))
    with pytest.raises(OptionError, match=r'network_g:scale is 2 but scale is 4'):
        build_model(ae_model)
    assert built == []


def test_option_loader_keeps_basicsr_conventions_and_names_the_tag():
    text = 'name: x\nnetwork_g: {type: RRDBNet, num_feat: 64}\nlr: !!float 2e-4\nmilestones: [1, 2]\nnone: ~\n'
    opt = yaml.load(text, Loader=OptionLoader)
    assert type(opt) is OrderedDict and type(opt['network_g']) is OrderedDict
    assert opt == {'name': 'x', 'network_g': {'type': 'RRDBNet', 'num_feat': 64}, 'lr': 2e-4, 'milestones': [1, 2],
                   'none': None}
    for tag in ('!!python/tuple [1, 2]', '!!python/name:os.system', CODE_IN_YAML.format(marker='/nonexistent/x')):
        with pytest.raises(CodeTagError, match=r'the tag !!python/\S+ would build a Python object') as err:
            yaml.load(f'a: 1\nb: {tag}\n', Loader=OptionLoader)
        assert err.value.problem_mark.line == 1


@pytest.mark.parametrize('model_type, refused', [
    ('RealESRGANModel', True), ('RealESRNetModel', True), ('RealESRGANModel_basicsr', True),
    ('AesopRealESRGANArtifactsDisModel', True),  # the authors' name: built on BasicSR's RealESRGANModel
    ('ESRGANModel', False), ('AESOPAEModel', False), ('ESRGANLDLModel', False), ('AesopESRGANArtifactsDisModel', False),
])
def test_cuda_only_models_are_known_by_their_classes(model_type, refused):
    opt = {'model_type': model_type, 'num_gpu': 0}
    check_cuda_only_model(opt, 'o.yml', cuda_available=True)
    if not refused:
        check_cuda_only_model(opt, 'o.yml', cuda_available=False)
        return
    with pytest.raises(OptionError, match=rf'^model_type: {model_type} in o.yml needs CUDA'):
        check_cuda_only_model(opt, 'o.yml', cuda_available=False)


@pytest.mark.parametrize('argv, env, expected, local_rank', [
    (['-opt', 'x.yml', '--local-rank=1', '--launcher', 'pytorch'], {}, ['-opt', 'x.yml', '--launcher', 'pytorch',
                                                                        '--local_rank=1'], '1'),
    (['--local_rank', '3', '-opt', 'x.yml'], {'LOCAL_RANK': '3'}, ['-opt', 'x.yml', '--local_rank=3'], '3'),
    (['--local-rank', '2', '-opt', 'x.yml'], {}, ['-opt', 'x.yml', '--local_rank=2'], '2'),
    (['-opt', 'x.yml', '--launcher', 'pytorch'], {'LOCAL_RANK': '1'}, ['-opt', 'x.yml', '--launcher', 'pytorch'], '1'),
])
def test_both_local_rank_spellings_and_the_environment(argv, env, expected, local_rank):
    environ = dict(env)
    assert accept_local_rank(argv, environ) == expected
    assert environ['LOCAL_RANK'] == local_rank


def test_data_check_flag_is_taken_off_before_basicsr_parses(field, monkeypatch):
    opt_file = field['data']
    monkeypatch.setattr(sys, 'argv', ['aesop-train', '-opt', opt_file, '--data-check', 'off'])
    monkeypatch.setattr(aesop_train, '_early_messages', [])
    opt, _ = aesop_train.parse_checked_options(field['work'], True)  # the broken data is not looked at
    assert sys.argv == ['aesop-train', '-opt', opt_file]
    assert ('info', 'Data check: off (--data-check off).') in aesop_train._early_messages
    monkeypatch.setattr(sys, 'argv', ['aesop-train', '-opt', opt_file, '--data-check', 'full'])
    with pytest.raises(DataCheckError, match='the data check found 3 problems'):
        aesop_train.parse_checked_options(field['work'], True)
