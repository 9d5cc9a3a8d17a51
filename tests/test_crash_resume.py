"""A training run killed with SIGKILL resumes with ``--auto_resume``; no file runs code when it is loaded.

Once per module, through real processes: a tiny ESRGAN + AESOPLoss run saving every iteration is
killed as soon as three training states exist (so that the one resumed from has a scheduler that has
stepped). Then the newest state is cut short (as a kill during a
non-atomic write would leave it), a newer "state" carrying a pickle payload is planted next to it,
and the run is resumed with ``--auto_resume``: it must skip both, naming each, resume from the one
before and finish. Pointing ``path:resume_state`` at the payload file must fail without running it.
"""
import os
import re
import signal
import subprocess
import time
from os import path as osp

import pytest
import torch
import basicsr.utils.options
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel

from aesop_basicsr import train as aesop_train
from aesop_basicsr.utils.checkpoint import is_temp_file
from tiny_training import (esrgan_aesop_options, must_succeed, process_env, read_logs, run, train_command,
                           write_autoencoder, write_yaml)

NAME = 'crash_resume'
STATE_NAME = re.compile(r'^(\d+)\.state$')


class CreatesMarker:
    """Unpickling this runs ``open(marker, 'w')``: it stands for any code a pickle can carry."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, 'w')


def payload_state(path: str, marker: str, iteration: int) -> str:
    """A file that looks like a BasicSR training state but creates ``marker`` when unpickled."""
    torch.save({'epoch': 0, 'iter': iteration, 'optimizers': [CreatesMarker(marker)], 'schedulers': []}, path)
    return path


def state_iters(folder: str) -> list:
    return sorted(int(m.group(1)) for m in map(STATE_NAME.match, os.listdir(folder)) if m)


def kill_after_states(cmd, cwd: str, states: str, count: int, timeout: float = 600) -> int:
    """Start ``cmd``; SIGKILL it as soon as ``states`` holds ``count`` training states; return its exit status."""
    with open(osp.join(cwd, 'killed_run.out'), 'w') as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=process_env(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        try:
            while not (osp.isdir(states) and len(state_iters(states)) >= count):
                if proc.poll() is not None:
                    raise AssertionError(f'the run ended by itself ({proc.returncode}):\n'
                                         + open(osp.join(cwd, 'killed_run.out')).read()[-4000:])
                if time.time() > deadline:
                    raise AssertionError(f'no {count} training states in time')
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    return proc.returncode


@pytest.fixture(scope='module')
def crash(tmp_path_factory, paired_x4) -> dict:
    work = tmp_path_factory.mktemp('crash_resume')
    cwd = str(work)
    ae_path = write_autoencoder(str(work / 'ae.pth'))
    yml = write_yaml(str(work / 'train.yml'),
                     esrgan_aesop_options(NAME, paired_x4, ae_path, total_iter=10**6, save_every=1))
    exp = osp.join(cwd, 'experiments', NAME)
    states, models = osp.join(exp, 'training_states'), osp.join(exp, 'models')

    killed_status = kill_after_states(train_command('-opt', yml), cwd, states, 3)
    after_kill = {folder: sorted(os.listdir(folder)) for folder in (states, models)}
    loads_after_kill = {}
    for folder, names in after_kill.items():
        for name in names:
            if not is_temp_file(name):
                try:
                    torch.load(osp.join(folder, name), map_location='cpu', weights_only=False)
                    loads_after_kill[name] = True
                except Exception:  # noqa: B902  (any failure counts)
                    loads_after_kill[name] = False

    iters = state_iters(states)
    newest, previous = iters[-1], iters[-2]
    truncated = osp.join(states, f'{newest}.state')
    with open(truncated, 'r+b') as f:
        f.truncate(os.path.getsize(truncated) // 2)
    marker = str(work / 'payload_ran')
    payload = payload_state(osp.join(states, f'{newest + 1}.state'), marker, newest + 1)

    refused = run(train_command('-opt', yml, '--force_yml', f'path:resume_state={payload}'), cwd)
    marker_after_refusal = osp.exists(marker)

    resumed = must_succeed(run(train_command('-opt', yml, '--auto_resume', '--force_yml',
                                             f'train:total_iter={previous + 2}'), cwd))
    return dict(cwd=cwd, yml=yml, exp=exp, states=states, models=models, killed_status=killed_status,
                after_kill=after_kill, loads_after_kill=loads_after_kill, newest=newest, previous=previous,
                truncated=truncated, payload=payload, marker=marker, refused=refused,
                marker_after_refusal=marker_after_refusal, resumed=resumed, log=read_logs(exp))


def test_the_run_was_killed_with_every_written_file_complete(crash):
    assert crash['killed_status'] == -signal.SIGKILL
    assert crash['loads_after_kill'] and all(crash['loads_after_kill'].values()), crash['loads_after_kill']
    final_names = [n for names in crash['after_kill'].values() for n in names if not is_temp_file(n)]
    for it in state_iters(crash['states'])[:3]:
        assert f'{it}.state' in final_names and f'net_g_{it}.pth' in final_names and f'net_d_{it}.pth' in final_names


def test_auto_resume_skips_the_cut_off_state_naming_it_and_resumes_from_the_previous(crash):
    err, out = crash['resumed'].stderr, crash['resumed'].stdout
    assert re.search(rf"WARNING: --auto_resume: '{re.escape(crash['truncated'])}' is not a PyTorch checkpoint .*"
                     rf"failed finding central directory.*Skipped {crash['newest']}\.state", err), err[-3000:]
    previous_state = osp.join(crash['states'], f'{crash["previous"]}.state')
    assert f'Resuming from training state {previous_state}.' in out
    log = crash['log']
    assert re.search(rf'Resuming training from epoch: \d+, iter: {crash["previous"]}\.', log)
    assert f'Skipped {crash["newest"]}.state' in log  # the warning is in the run's log file too
    resumed_log = log[log.index('Resuming training from epoch'):]
    iters = [int(v) for v in re.findall(r'iter:\s*(\d+), lr:', resumed_log)]
    assert iters == [crash['previous'] + 1, crash['previous'] + 2], iters
    assert 'End of training.' in resumed_log
    for it in (crash['previous'] + 1, crash['previous'] + 2):  # written again, complete
        state = torch.load(osp.join(crash['states'], f'{it}.state'), weights_only=False)
        assert state['iter'] == it
    assert not [n for n in os.listdir(crash['states']) + os.listdir(crash['models']) if is_temp_file(n)]


def test_pickle_payload_is_refused_naming_file_and_type_and_never_runs(crash):
    refused = crash['refused']
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert 'Traceback' not in refused.stderr
    assert re.search(rf"aesop-train: error: path:resume_state: '{re.escape(crash['payload'])}' is not a PyTorch "
                     r"checkpoint that loads with weights_only=True: it needs \S*open, which is not an allowed type",
                     refused.stderr), refused.stderr[-2000:]
    assert not crash['marker_after_refusal']
    # with --auto_resume the payload file is the newest: skipped by name and type, and still never run
    assert re.search(rf"WARNING: --auto_resume: '{re.escape(crash['payload'])}' .*needs \S*open, which is not an "
                     rf"allowed type.*Skipped {crash['newest'] + 1}\.state", crash['resumed'].stderr)
    assert not osp.exists(crash['marker'])


def test_the_payload_would_have_run_with_a_full_unpickler(tmp_path):
    """The control: the same kind of file does create its marker when loaded with weights_only=False."""
    marker = str(tmp_path / 'ran')
    torch.load(payload_state(str(tmp_path / 'x.state'), marker, 1), weights_only=False)
    assert osp.exists(marker)


def assert_bit_identical(actual, expected, where: str) -> None:
    """Deep equality; tensors compared byte for byte (dtype and shape included)."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), where
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), where
        a, e = actual.detach().cpu().contiguous(), expected.detach().cpu().contiguous()
        assert torch.equal(a.reshape(-1).view(torch.uint8), e.reshape(-1).view(torch.uint8)), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), (where, list(actual), list(expected))
        for key in expected:
            assert_bit_identical(actual[key], expected[key], f'{where}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_bit_identical(a, e, f'{where}[{i}]')
    else:
        assert type(actual) is type(expected) and actual == expected, (where, actual, expected)


def test_resume_restores_networks_emas_optimizers_schedulers_and_iteration_bit_identically(crash, monkeypatch):
    """The resumed model, built as aesop-train builds it, holds exactly what the killed run saved."""
    previous = crash['previous']
    state_file = osp.join(crash['states'], f'{previous}.state')
    monkeypatch.setattr('sys.argv', ['aesop-train', '-opt', crash['yml'], '--force_yml',
                                     f'path:resume_state={state_file}'])
    monkeypatch.setattr(basicsr.utils.options, 'init_dist', basicsr.utils.options.init_dist)  # restored after
    monkeypatch.setattr(BaseModel, 'load_network', aesop_train.load_network)
    monkeypatch.setattr(BaseModel, 'model_to_device', aesop_train.model_to_device)
    monkeypatch.setattr(aesop_train, '_early_messages', [])
    opt, _ = aesop_train.parse_checked_options(crash['cwd'], is_train=True)
    resume_state = aesop_train.load_resume_state(opt)
    model = build_model(opt)
    model.resume_training(resume_state)

    saved_g = torch.load(osp.join(crash['models'], f'net_g_{previous}.pth'), weights_only=True)
    saved_d = torch.load(osp.join(crash['models'], f'net_d_{previous}.pth'), weights_only=True)
    saved_state = torch.load(state_file, weights_only=False)  # an independent, unrestricted reader
    assert resume_state['iter'] == saved_state['iter'] == previous
    assert resume_state['epoch'] == saved_state['epoch']
    assert_bit_identical(dict(model.net_g.state_dict()), dict(saved_g['params']), 'net_g')
    assert_bit_identical(dict(model.net_g_ema.state_dict()), dict(saved_g['params_ema']), 'net_g_ema')
    assert_bit_identical(dict(model.net_d.state_dict()), dict(saved_d['params']), 'net_d')
    assert len(model.optimizers) == len(model.schedulers) == 2  # generator and discriminator
    for i, (optimizer, scheduler) in enumerate(zip(model.optimizers, model.schedulers)):
        assert_bit_identical(optimizer.state_dict(), saved_state['optimizers'][i], f'optimizers[{i}]')
        assert_bit_identical(scheduler.state_dict(), saved_state['schedulers'][i], f'schedulers[{i}]')
    # the states are not trivially equal: Adam has moments, and the scheduler has stepped
    assert saved_state['optimizers'][0]['state'] and saved_state['schedulers'][0]['last_epoch'] >= 1
    last_epoch = saved_state['schedulers'][0]['last_epoch']  # MultiStepLR: milestones 1 and 3, gamma 0.5
    assert saved_state['optimizers'][0]['param_groups'][0]['lr'] == 1e-3 * 0.5**sum(m <= last_epoch for m in (1, 3))
    assert not torch.equal(saved_g['params']['conv_first.weight'], saved_g['params_ema']['conv_first.weight'])


def test_auto_resume_needs_the_networks_of_the_state_it_resumes(tmp_path, monkeypatch, capsys):
    """A state that loads but lacks its net_d_<iter>.pth is skipped, naming the missing file."""
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    for it in (2, 4):
        torch.save({'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
        torch.save({'params': {'w': torch.ones(1)}}, models / f'net_g_{it}.pth')
    torch.save({'params': {'w': torch.ones(1)}}, models / 'net_d_2.pth')  # but no net_d_4.pth
    opt = {'auto_resume': True, 'rank': 0, 'num_gpu': 0, 'network_g': {}, 'network_d': {},
           'path': {'training_states': str(states), 'models': str(models), 'resume_state': None}}
    monkeypatch.setattr(aesop_train, '_early_messages', [])
    assert aesop_train.load_resume_state(opt)['iter'] == 2
    assert opt['path']['resume_state'] == str(states / '2.state')
    assert opt['path']['pretrain_network_d'] == str(models / 'net_d_2.pth')
    err = capsys.readouterr().err
    assert f"'{states / '4.state'}' is for iteration 4, but its network checkpoint '{models / 'net_d_4.pth'}' does " \
           'not exist. Skipped 4.state' in err
    (models / 'net_d_2.pth').unlink()
    with pytest.raises(ValueError, match=r'none of the 2 training states .* can be resumed'):
        aesop_train.load_resume_state(dict(opt, path=dict(opt['path'], resume_state=None)))
