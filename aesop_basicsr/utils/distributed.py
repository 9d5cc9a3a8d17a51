"""torch.distributed for BasicSR's ``--launcher pytorch|slurm`` on GPUs and on CPU-only hosts.

BasicSR 1.4.2 assumes CUDA: its ``init_dist`` calls ``torch.cuda.set_device(rank % num_gpus)``
(ZeroDivisionError without a GPU) and always asks for NCCL, and ``BaseModel.model_to_device`` wraps
networks in DistributedDataParallel with ``device_ids=[cuda device]``. The functions here replace
those two steps in our entry points: on GPUs they do what BasicSR does (NCCL, one device per
process, ``LOCAL_RANK`` first so that several nodes work too); on CPU they use gloo and wrap
without device ids. The option file's ``dist_params: {backend: ...}`` is honoured where it fits
the device (``nccl`` needs CUDA).
"""
import hashlib
import os
import subprocess
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from aesop_basicsr.utils.cli import OptionError

CUDA_ONLY_BACKENDS = ('nccl', )
LOCAL_RANK_FLAGS = ('--local-rank', '--local_rank')


def accept_local_rank(argv: Sequence[str], environ: MutableMapping[str, str]) -> List[str]:
    """``argv`` with ``--local-rank N`` (any spelling) as ``--local_rank=N``, which BasicSR 1.4.2 parses.

    ``python -m torch.distributed.launch`` passes ``--local-rank=N`` (PyTorch >= 2.0; ``--local_rank=N``
    before); ``torchrun`` passes nothing and sets ``LOCAL_RANK``. The rank given on the command line is
    also put in ``LOCAL_RANK`` where the launcher did not set it, since :func:`init_dist` reads it there.
    """
    out, rank, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        flag, has_value, value = arg.partition('=')
        if flag in LOCAL_RANK_FLAGS:
            if not has_value and i + 1 < len(argv):
                i, value = i + 1, argv[i + 1]
            rank = value
        else:
            out.append(arg)
        i += 1
    if rank is not None:
        out.append(f'--local_rank={rank}')
        environ.setdefault('LOCAL_RANK', rank)
    return out


def choose_backend(requested: Optional[str], cuda: bool) -> str:
    """The process-group backend: ``requested`` (``dist_params.backend``) if it fits the device, else
    nccl on GPUs and gloo on CPU."""
    if requested:
        requested = str(requested).lower()
        if cuda or requested not in CUDA_ONLY_BACKENDS:
            return requested
    return 'nccl' if cuda else 'gloo'


def init_dist(launcher: str, dist_params: Optional[Mapping[str, Any]] = None) -> str:
    """Initialise the default process group for ``launcher`` (``pytorch`` or ``slurm``); return the backend.

    ``pytorch``: the environment of ``torchrun`` (RANK, WORLD_SIZE, MASTER_ADDR/PORT, LOCAL_RANK).
    ``slurm``: derived from SLURM_* as BasicSR does (``dist_params.port`` or MASTER_PORT or 29500).
    """
    dist_params = dict(dist_params or {})
    cuda = torch.cuda.is_available()
    backend = choose_backend(dist_params.get('backend'), cuda)
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    needed = {'pytorch': ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
              'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')}.get(launcher, ())
    missing = [name for name in needed if name not in os.environ]
    if missing:
        starter = 'torchrun (e.g. torchrun --nproc_per_node 2 -m aesop_basicsr.train ...)' if launcher == 'pytorch' \
            else 'srun'
        raise OptionError(f'--launcher {launcher}: {", ".join(missing)} not set; start the command with {starter}, '
                          'or drop --launcher for a single process.')
    if launcher == 'pytorch':
        rank = int(os.environ['RANK'])
        local_rank = int(os.environ.get('LOCAL_RANK', rank))
    elif launcher == 'slurm':
        rank = int(os.environ['SLURM_PROCID'])
        local_rank = int(os.environ.get('SLURM_LOCALID', rank))
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
        if dist_params.get('port') is not None:
            os.environ['MASTER_PORT'] = str(dist_params['port'])
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['LOCAL_RANK'] = str(local_rank)
        os.environ['RANK'] = str(rank)
    else:
        raise OptionError(f'--launcher {launcher!r} is not a distributed launcher (pytorch, slurm).')
    if cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend)
    return backend


def wrap_ddp(net: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> DistributedDataParallel:
    """DistributedDataParallel on the model's device: one CUDA device id on GPUs, none on CPU."""
    device_ids = [torch.cuda.current_device()] if device.type == 'cuda' else None
    return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def tensors_digest(named_tensors: Iterable[Tuple[str, Tensor]]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of each tensor, in the given order."""
    digest = hashlib.sha256()
    for key, value in named_tensors:
        value = value.detach().to('cpu').contiguous()
        digest.update(f'{key}|{value.dtype}|{tuple(value.shape)}|'.encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b'')
    return digest.hexdigest()


def replica_digests(model: Any) -> Dict[str, str]:
    """``{net_g: sha256, net_g_ema: ..., net_d: ...}`` over the weights (parameters) of a BasicSR model's networks.

    Buffers are left out: BatchNorm running statistics are each rank's own between forwards (DDP
    broadcasts rank 0's at the start of each forward), so only the weights must agree.
    """
    digests = {}
    for name in ('net_g', 'net_g_ema', 'net_d'):
        net = getattr(model, name, None)
        if isinstance(net, nn.Module):
            digests[name] = tensors_digest(model.get_bare_model(net).named_parameters())
    return digests
