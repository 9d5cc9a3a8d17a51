"""The authors' launch command, ``python -m torch.distributed.launch ... --launcher pytorch`` (which passes
``--local-rank=N``), on a host without CUDA; and LPIPS in ``val.metrics`` without ``better``, whose Best must be
its lowest value. One real two-process run (gloo) serves both; ``torchrun`` is run in test_distributed_cpu.py.
"""
import re
import socket
import sys
from os import path as osp

import pytest
import torch

from tiny_training import must_succeed, read_logs, run, sr_model_options, write_yaml

ITERS = 3
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason='torch.distributed with gloo is needed')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def launched(tmp_path_factory, paired_x4, stand_in_alexnet) -> dict:
    work = tmp_path_factory.mktemp('launch')
    # a large learning rate, so that every validation sees another generator
    opt = sr_model_options('launch_lpips', paired_x4, ITERS, lr=2e-2, val_every=1,
                           metrics={'lpips': {'type': 'calculate_lpips', 'crop_border': 4}})
    yml = write_yaml(str(work / 'launch.yml'), opt)
    proc = must_succeed(run([sys.executable, '-m', 'torch.distributed.launch', '--nproc_per_node=2',
                             f'--master_port={free_port()}', '-m', 'aesop_basicsr.train', '-opt', yml,
                             '--launcher', 'pytorch'], str(work), CUDA_VISIBLE_DEVICES=''))  # gloo, also on GPU hosts
    return dict(proc=proc, log=read_logs(osp.join(str(work), 'experiments', opt['name'])))


def test_torch_distributed_launch_passes_local_rank_and_two_processes_train(launched):
    assert 'torch.distributed.launch is deprecated' in launched['proc'].stderr  # this launcher, not torchrun
    log = launched['log']
    assert 'World size (gpu number): 2' in log
    assert 'Distributed training on CPU: backend gloo, world size 2.' in log
    assert [int(i) for i in re.findall(r'iter:\s*(\d+), lr:', log)] == list(range(1, ITERS + 1))
    assert 'End of training.' in log


def test_lpips_without_better_keeps_its_lowest_value_as_best(launched):
    log = launched['log']
    assert ("val:metrics:lpips: calculate_lpips is lower-is-better and has no 'better' key; better: lower is set, so "
            'that Best is its lowest value.') in log
    found = [(float(value), float(best)) for value, best in
             re.findall(r'# lpips: ([\d.]+)\tBest: ([\d.]+) @ \d+ iter', log)]
    values = [value for value, _ in found]
    assert len(values) == ITERS + 1 and len(set(values)) > 1, values  # each iteration and the end; not all equal
    for k, (_, best) in enumerate(found):
        assert best == min(values[:k + 1]), (k, found)
    assert 'has no \'better: lower\'' not in log  # the metric itself had nothing to warn about
