"""``torchrun --nproc_per_node 2 -m aesop_basicsr.train --launcher pytorch`` on a host without CUDA.

Two real runs, once per module: ESRGAN + AESOPLoss, and AESOPAEModel with its decoder frozen.
The ranks start from different seeds (BasicSR seeds ``manual_seed + rank``) and draw different
images, so they end with identical weights only if DDP really broadcasts and averages over gloo.
"""
import json
import re
from os import path as osp

import pytest
import torch

from aesop_basicsr.utils.distributed import choose_backend, tensors_digest
from tiny_training import (ae_model_options, esrgan_aesop_options, must_succeed, read_logs, run, torchrun_command,
                           write_autoencoder, write_decoder, write_yaml)

ITERS = 4
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason='torch.distributed with gloo is needed')


@pytest.fixture(scope='module')
def runs(tmp_path_factory, paired_x4) -> dict:
    work = tmp_path_factory.mktemp('ddp_cpu')
    cwd = str(work)
    ae_path = write_autoencoder(str(work / 'ae.pth'))
    decoder_path = write_decoder(str(work / 'decoder.pth'))
    out = {}
    for name, opt in (('esrgan', esrgan_aesop_options('ddp_esrgan_aesop', paired_x4, ae_path, ITERS)),
                      ('ae', ae_model_options('ddp_ae_frozen_decoder', paired_x4, decoder_path, ITERS))):
        yml = write_yaml(str(work / f'{name}.yml'), opt)
        proc = must_succeed(run(torchrun_command(2, '-opt', yml), cwd))
        exp = osp.join(cwd, 'experiments', opt['name'])
        out[name] = dict(proc=proc, exp=exp, log=read_logs(exp), opt=opt,
                         digests=[json.load(open(osp.join(exp, 'replica_digests', f'rank{r}.json'))) for r in (0, 1)])
    out['decoder_path'] = decoder_path
    return out


@pytest.mark.parametrize('name', ['esrgan', 'ae'])
def test_log_reports_world_size_two_on_gloo(runs, name):
    log = runs[name]['log']
    assert 'World size (gpu number): 2' in log
    assert 'Distributed training on CPU: backend gloo, world size 2.' in log
    iters = [int(v) for v in re.findall(r'iter:\s*(\d+), lr:', log)]
    assert iters == list(range(1, ITERS + 1)), iters  # the log is rank 0's; every iteration ran
    assert 'End of training.' in log


def test_nccl_in_dist_params_falls_back_to_gloo_without_cuda(runs):
    assert 'dist_params:backend nccl needs CUDA; this host has none, so gloo is used.' in runs['esrgan']['log']
    assert choose_backend('nccl', cuda=False) == 'gloo' and choose_backend('nccl', cuda=True) == 'nccl'
    assert choose_backend('gloo', cuda=True) == 'gloo' and choose_backend(None, cuda=True) == 'nccl'


@pytest.mark.parametrize('name, nets', [('esrgan', ('net_g', 'net_g_ema', 'net_d')), ('ae', ('net_g', 'net_g_ema'))])
def test_both_ranks_end_with_bit_identical_weights(runs, name, nets):
    rank0, rank1 = runs[name]['digests']
    assert (rank0['rank'], rank1['rank'], rank0['world_size']) == (0, 1, 2)
    assert set(rank0['sha256']) == set(nets)
    assert rank0['sha256'] == rank1['sha256']
    assert 'All 2 replicas end with identical networks' in runs[name]['log']


@pytest.mark.parametrize('name', ['esrgan', 'ae'])
def test_rank_digest_matches_the_saved_checkpoint(runs, name):
    """What rank 0 saved is what both ranks hold, and training moved the generator."""
    saved = torch.load(osp.join(runs[name]['exp'], 'models', 'net_g_latest.pth'), map_location='cpu',
                       weights_only=True)
    digests = runs[name]['digests'][0]['sha256']
    # named_parameters() order equals state_dict() order for these buffer-free networks
    assert tensors_digest(saved['params'].items()) == digests['net_g']
    assert tensors_digest(saved['params_ema'].items()) == digests['net_g_ema']
    assert saved['params'].keys() == saved['params_ema'].keys()
    assert any(not torch.equal(saved['params'][k], saved['params_ema'][k]) for k in saved['params'])


def test_frozen_decoder_stays_pretrained_while_the_encoder_trains(runs):
    saved = torch.load(osp.join(runs['ae']['exp'], 'models', 'net_g_latest.pth'), map_location='cpu',
                       weights_only=True)['params']
    decoder = torch.load(runs['decoder_path'], weights_only=True)['params']
    for key, value in decoder.items():
        assert torch.equal(saved['decoder.' + key], value), key
    assert 'The decoder is frozen for the whole run' in runs['ae']['log']
    l_lr = [float(v) for v in re.findall(r'l_lr: (\S+)', runs['ae']['log'])]
    assert len(l_lr) == ITERS and all(v == v and v > 0 for v in l_lr), l_lr  # the encoder trains, finitely


def test_validation_and_saving_happen_on_rank_zero_only(runs):
    log = runs['esrgan']['log']
    assert log.count('End of training.') == 1  # one log file, written by rank 0
    assert len(re.findall(r'# psnr: ', log)) == 1  # the final validation, once
    assert osp.isfile(osp.join(runs['esrgan']['exp'], 'models', 'net_d_latest.pth'))
