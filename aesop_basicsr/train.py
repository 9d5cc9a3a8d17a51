"""``aesop-train -opt X.yml`` / ``python -m aesop_basicsr.train``: BasicSR's train.py with AESOP registered.

Flags are BasicSR's own (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``).
``experiments/<name>/`` and ``tb_logger/`` are written under the current directory; an option file
with ``path: {experiments_root: DIR}`` (``results_root`` for testing) puts the run in ``DIR/<name>/``,
as BasicSR's GitHub master reads that key (BasicSR 1.4.2 ignores it). What differs
from ``basicsr/train.py`` (all through :func:`use_aesop_hooks`, BasicSR itself is not modified):

- option files are checked before anything is built (YAML, ``<REQUIRED ...>`` placeholders,
  ``num_gpu`` without CUDA, CUDA-only models, patch sizes, dataset folders, AESOPLoss options and
  auto-encoder scales), then every image of every dataset (``--data-check headers|full|off``,
  :mod:`aesop_basicsr.data.dataset_check`); a user error prints one line naming the key and file and
  exits with status 2 (``--debug`` shows the traceback);
- an image that fails to decode during the run is named with its dataset key, and stops the run or
  is skipped (``datasets:<key>:on_unreadable_image``, :mod:`aesop_basicsr.data.unreadable_images`);
- lower-is-better metrics (LPIPS, DISTS) in ``val.metrics`` get ``better: lower`` where it is missing;
- ``--local-rank N`` (``python -m torch.distributed.launch``) is accepted as well as ``--local_rank``;
- ``--launcher pytorch|slurm`` also works on CPU-only hosts (gloo; nccl on GPUs;
  ``dist_params.backend`` where it fits the device), e.g. ``torchrun --nproc_per_node 2``; at the
  end each rank writes the SHA-256 of its networks to ``<experiments_root>/replica_digests/``;
- networks and training states are written crash-safe (temporary file, then rename);
- training states are read without running code from them (``weights_only`` with an allowlist);
  ``--auto_resume`` takes the newest state that loads and whose ``net_*_<iter>.pth`` files exist,
  skipping (with a warning naming it) any that do not;
- network weights (``pretrain_network_*``) may be ``.safetensors`` files.
"""
import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from os import path as osp
from typing import Any, List, Optional, Tuple

import yaml

import aesop_basicsr  # noqa: F401  (registers AESOP into BasicSR; must precede basicsr)
import basicsr.data
import basicsr.models
import basicsr.test
import basicsr.train
import basicsr.utils.options
import torch
import torch.distributed as dist
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger, scandir
from basicsr.utils.dist_util import master_only
from basicsr.utils.misc import check_resume
from basicsr.utils.options import parse_options
from torch.nn.parallel import DataParallel

from aesop_basicsr.data.dataset_check import MODES as DATA_CHECK_MODES
from aesop_basicsr.data.dataset_check import check_datasets
from aesop_basicsr.data.unreadable_images import NamedDecodeFailures
from aesop_basicsr.metrics.lower_is_better import fill_in_better
from aesop_basicsr.utils import distributed
from aesop_basicsr.utils.checkpoint import (basicsr_param_key, check_fits, is_temp_file, read_checkpoint,
                                            read_training_state, save_checkpoint, select_params)
from aesop_basicsr.utils.cli import CheckpointError, UserError, command
from aesop_basicsr.utils.options import UNREADABLE_IMAGE_KEY, check_before_run, check_force_yml, read_option_file

SAVE_RETRIES = 3
REPLICA_DIGESTS_DIR = 'replica_digests'

# what happened before BasicSR's logger existed (it must be set up by train_pipeline first);
# written to the log as soon as the model is built
_early_messages: List[Tuple[str, str]] = []
_built_models: List[Any] = []
_parsed_options: List[dict] = []


def _note(level: str, message: str, rank: int = 0) -> None:
    """Print now (rank 0 only) and log once the logger exists."""
    if rank == 0:
        print(f'{level.upper()}: {message}' if level != 'info' else message,
              file=sys.stderr if level != 'info' else sys.stdout, flush=True)
    _early_messages.append((level, message))


# ---- options -------------------------------------------------------------------------------
def option_file_argument(argv: List[str]) -> Tuple[Optional[str], Optional[List[str]]]:
    """``-opt`` and ``--force_yml`` from the command line, parsed as BasicSR will parse them."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str, default=None)
    parser.add_argument('--force_yml', nargs='+', default=None)
    args, _ = parser.parse_known_args(argv)
    return args.opt, args.force_yml


def data_check_argument(argv: List[str]) -> Tuple[str, List[str]]:
    """``--data-check headers|full|off`` (default headers), and ``argv`` without it (BasicSR's parser refuses it)."""
    parser = argparse.ArgumentParser(prog='aesop-train', add_help=False)
    parser.add_argument('--data-check', choices=DATA_CHECK_MODES, default='headers')
    args, rest = parser.parse_known_args(argv)
    return args.data_check, rest


def use_run_folder_from_option_file(opt: dict, opt_file: str) -> None:
    """Honour ``path: experiments_root`` / ``results_root`` from the option file as BasicSR's GitHub master reads them.

    The key names the folder that holds the run's folder ``<name>/`` (as ``experiments/`` does by default),
    which is how BasicSR master and ``basicsr-fixed`` read it; BasicSR 1.4.2 ignores the key and always
    uses ``<root>/experiments/<name>`` (``results/<name>`` for testing). Either way the run goes to
    ``<key>/<name>``: only that folder is this run's, and only it is renamed to ``<name>_archived_<time>``
    by BasicSR when a fresh run finds it already there; the folder the key names is never touched.
    """
    with open(opt_file) as f:
        user_paths = (yaml.safe_load(f) or {}).get('path') or {}
    key = 'experiments_root' if opt['is_train'] else 'results_root'
    if not user_paths.get(key):
        return
    run = osp.join(osp.abspath(osp.expanduser(user_paths[key])), opt['name'])
    opt['path'].update({key: run, 'log': run, 'visualization': osp.join(run, 'visualization')})
    if opt['is_train']:
        opt['path'].update(models=osp.join(run, 'models'), training_states=osp.join(run, 'training_states'))


def parse_checked_options(root_path: str, is_train: bool = True):
    """BasicSR's ``parse_options`` with checks before and after it, and device-aware distributed init."""
    data_check, rest = data_check_argument(sys.argv[1:])
    sys.argv[1:] = distributed.accept_local_rank(rest, os.environ)
    opt_file, force_yml = option_file_argument(sys.argv[1:])
    dist_params = {}
    if opt_file is not None:  # else BasicSR's own parser reports the missing -opt
        raw = read_option_file(opt_file)
        check_force_yml(raw, force_yml)
        dist_params = raw.get('dist_params') or {}
    basicsr.utils.options.init_dist = lambda launcher, **kwargs: _init_dist(launcher, {**dist_params, **kwargs})
    opt, args = parse_options(root_path, is_train=is_train)
    use_run_folder_from_option_file(opt, args.opt)
    check_before_run(opt, args.opt, torch.cuda.is_available())
    _note('info', str(check_datasets(opt, args.opt, data_check)), opt['rank'])
    for message in fill_in_better(opt, log=False):
        _note('info', message, opt['rank'])
    _parsed_options.append(opt)
    return opt, args


def _init_dist(launcher: str, dist_params: dict) -> None:
    backend = distributed.init_dist(launcher, dist_params)
    rank, device = dist.get_rank(), 'CUDA' if torch.cuda.is_available() else 'CPU'
    requested = dist_params.get('backend')
    if requested and str(requested).lower() != backend:
        _note('info', f'dist_params:backend {requested} needs CUDA; this host has none, so {backend} is used.', rank)
    _note('info', f'Distributed training on {device}: backend {backend}, world size {dist.get_world_size()}.', rank)


# ---- resuming ------------------------------------------------------------------------------
def resume_map_location(opt: dict) -> torch.device:
    """Where to load a training state: the current CUDA device, or the CPU where there is none."""
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def training_states(state_dir: str) -> List[str]:
    """Paths of the ``<iter>.state`` files in ``state_dir``, highest iteration first."""
    if not osp.isdir(state_dir):
        return []
    names = [name for name in scandir(state_dir, suffix='.state', recursive=False) if name[:-6].isdigit()]
    return [osp.join(state_dir, name) for name in sorted(names, key=lambda name: -int(name[:-6]))]


def latest_training_state(state_dir: str) -> Optional[str]:
    """Path of ``<iter>.state`` with the highest iteration in ``state_dir``, or None."""
    states = training_states(state_dir)
    return states[0] if states else None


def network_files(opt: dict, resume_iter: int) -> List[str]:
    """The ``net_<name>_<iter>.pth`` files a resume from ``resume_iter`` loads (as BasicSR's check_resume)."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [osp.join(opt['path']['models'], f'net_{key[len("network_"):]}_{resume_iter}.pth')
            for key in opt if key.startswith('network_') and key not in ignored]


def check_network_files(opt: dict, state_path: str, resume_iter: int, option_key: str) -> None:
    """Each network checkpoint of that iteration exists and loads."""
    for path in network_files(opt, resume_iter):
        if not osp.isfile(path):
            raise CheckpointError(f'{option_key}: {state_path!r} is for iteration {resume_iter}, but its network '
                                  f'checkpoint {path!r} does not exist.')
        if 'params' not in read_checkpoint(path, option_key):
            raise CheckpointError(f'{option_key}: {path!r} (for {state_path!r}) has no params.')


def remove_temp_files(opt: dict) -> None:
    """Delete the temporary files a killed run left in ``models/`` and ``training_states/`` (rank 0)."""
    if opt['rank'] != 0:
        return
    for folder in (opt['path']['models'], opt['path']['training_states']):
        if osp.isdir(folder):
            for name in os.listdir(folder):
                if is_temp_file(name):
                    os.remove(osp.join(folder, name))
                    _note('warning', f'Removed {osp.join(folder, name)}, a partial file left by an interrupted run.')


def newest_usable_training_state(opt: dict) -> Optional[Tuple[str, dict]]:
    """(path, state) of the newest training state that loads and has its networks; warn about each skipped."""
    candidates = training_states(opt['path']['training_states'])
    for path in candidates:
        try:
            state = read_training_state(path, '--auto_resume', resume_map_location(opt))
            check_network_files(opt, path, state['iter'], '--auto_resume')
        except UserError as err:
            _note('warning', f'{err} Skipped {osp.basename(path)}; trying an earlier training state.', opt['rank'])
            continue
        return path, state
    if candidates:
        raise CheckpointError(f'--auto_resume: none of the {len(candidates)} training states in '
                              f'{opt["path"]["training_states"]!r} can be resumed (see the warnings above); '
                              'remove them to start afresh, or set path:resume_state.')
    return None


def load_resume_state(opt: dict) -> Optional[dict]:
    """``basicsr.train.load_resume_state``, reading states safely and on CPU-only hosts too."""
    if opt['auto_resume']:
        remove_temp_files(opt)
        found = newest_usable_training_state(opt)
        if found is None:
            return None
        resume_state_path, resume_state = found
        opt['path']['resume_state'] = resume_state_path
    else:
        resume_state_path = opt['path'].get('resume_state')
        if not resume_state_path:
            return None
        resume_state = read_training_state(resume_state_path, 'path:resume_state', resume_map_location(opt))
        check_network_files(opt, resume_state_path, resume_state['iter'], 'path:resume_state')
    check_resume(opt, resume_state['iter'])
    _note('info', f'Resuming from training state {resume_state_path}.', opt['rank'])
    return resume_state


# ---- BaseModel: saving, loading, devices ---------------------------------------------------
def _retry_save(obj: Any, path: str, what: str) -> None:
    """Crash-safe save; like BasicSR, retry a failing write and then warn rather than stop training."""
    for attempt in range(SAVE_RETRIES, 0, -1):
        try:
            save_checkpoint(obj, path)
            return
        except Exception as err:
            get_root_logger().warning(f'Save {what} error: {err}, remaining retry times: {attempt - 1}')
            time.sleep(1)
    get_root_logger().error(f'Still cannot save {path}. Training goes on without it.')


@master_only
def save_network(self, net, net_label, current_iter, param_key='params') -> None:
    """``BaseModel.save_network``, written crash-safe."""
    label = 'latest' if current_iter == -1 else current_iter
    save_path = osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth')
    nets = net if isinstance(net, list) else [net]
    param_keys = param_key if isinstance(param_key, list) else [param_key]
    assert len(nets) == len(param_keys), 'The lengths of net and param_key should be the same.'
    save_dict = {}
    for net_, param_key_ in zip(nets, param_keys):
        state_dict = self.get_bare_model(net_).state_dict()
        save_dict[param_key_] = OrderedDict(
            ((k[7:] if k.startswith('module.') else k), v.cpu()) for k, v in state_dict.items())
    _retry_save(save_dict, save_path, 'model')


@master_only
def save_training_state(self, epoch, current_iter) -> None:
    """``BaseModel.save_training_state``, written crash-safe (after the networks of the same iteration)."""
    if current_iter == -1:
        return
    state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
             'schedulers': [s.state_dict() for s in self.schedulers]}
    _retry_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'), 'training state')


def option_key_of(opt: dict, load_path: str) -> str:
    """The ``path:pretrain_network_*`` key that names ``load_path`` (for error messages)."""
    for key, value in opt.get('path', {}).items():
        if key.startswith('pretrain_network') and value == load_path:
            return f'path:{key}'
    return 'path:pretrain_network'


def load_network(self, net, load_path, strict=True, param_key='params') -> None:
    """``BaseModel.load_network`` through the package's reader: ``weights_only``, ``.safetensors``, clear errors."""
    logger = get_root_logger()
    option_key = option_key_of(self.opt, load_path)
    param_key_option = option_key.replace('pretrain_network', 'param_key')
    net = self.get_bare_model(net)
    checkpoint = read_checkpoint(load_path, option_key)
    if basicsr_param_key(checkpoint, param_key) != param_key:
        param_key = 'params'
        logger.info('Loading: params_ema does not exist, use params.')
    logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    state = select_params(checkpoint, param_key, load_path, param_key_option)
    fold = getattr(net, 'fold_released_keys', None)
    if fold is not None:
        state = fold(state)
    if strict:
        check_fits(net, state, load_path, option_key, True)
    else:
        self._print_different_keys_loading(net, state, strict)
    net.load_state_dict(state, strict=strict)


def model_to_device(self, net):
    """``BaseModel.model_to_device``; under DDP the wrapper fits the device (no CUDA device ids on CPU)."""
    net = net.to(self.device)
    if self.opt['dist']:
        return distributed.wrap_ddp(net, self.device, self.opt.get('find_unused_parameters', False))
    if self.opt['num_gpu'] > 1:
        return DataParallel(net)
    return net


def build_dataset(dataset_opt: dict) -> NamedDecodeFailures:
    """BasicSR's ``build_dataset``; an image that fails to decode is named with the dataset key (stop or skip)."""
    key = next((f'datasets:{name}' for opt in _parsed_options[-1:] for name, value in opt['datasets'].items()
                if value is dataset_opt), f'datasets:{dataset_opt.get("phase")}')
    return NamedDecodeFailures(basicsr.data.build_dataset(dataset_opt), key,
                               dataset_opt.get(UNREADABLE_IMAGE_KEY, 'stop'))


def build_model(opt: dict):
    """BasicSR's ``build_model``; first writes what happened before the logger existed into the log."""
    logger = get_root_logger()
    while _early_messages:
        level, message = _early_messages.pop(0)
        getattr(logger, level)(message)
    model = basicsr.models.build_model(opt)
    _built_models.append(model)
    return model


def use_aesop_hooks() -> None:
    """Point BasicSR's train/test pipelines and BaseModel at the functions above."""
    basicsr.train.parse_options = parse_checked_options
    basicsr.train.load_resume_state = load_resume_state
    basicsr.train.build_model = build_model
    basicsr.train.build_dataset = build_dataset
    basicsr.test.build_dataset = build_dataset
    basicsr.test.parse_options = lambda root_path, is_train=False: parse_checked_options(root_path, is_train)
    basicsr.test.build_model = build_model
    BaseModel.save_network = save_network
    BaseModel.save_training_state = save_training_state
    BaseModel.load_network = load_network
    BaseModel.model_to_device = model_to_device


# ---- end of a distributed run --------------------------------------------------------------
def finish_distributed_run() -> None:
    """Each rank writes the SHA-256 of its networks; rank 0 logs whether all replicas agree."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if _built_models:
        model = _built_models[-1]
        rank, world_size = dist.get_rank(), dist.get_world_size()
        digests = distributed.replica_digests(model)
        folder = osp.join(model.opt['path']['experiments_root'], REPLICA_DIGESTS_DIR)
        os.makedirs(folder, exist_ok=True)
        with open(osp.join(folder, f'rank{rank}.json'), 'w') as f:
            json.dump({'rank': rank, 'world_size': world_size, 'sha256': digests}, f, indent=1)
        everyone: List[Any] = [None] * world_size
        dist.all_gather_object(everyone, digests)
        if rank == 0:
            logger = get_root_logger()
            if all(d == digests for d in everyone):
                logger.info(f'All {world_size} replicas end with identical networks: '
                            + ', '.join(f'{k} sha256 {v[:16]}' for k, v in digests.items()) + f' ({folder}).')
            else:
                differing = sorted({k for d in everyone for k in d if d.get(k) != digests.get(k)})
                logger.error(f'The {world_size} replicas end with different {", ".join(differing)}; see {folder}.')
    dist.barrier()
    dist.destroy_process_group()


@command('aesop-train', keep_debug_flag=True)
def main(root_path: Optional[str] = None) -> None:
    use_aesop_hooks()
    basicsr.train.train_pipeline(root_path or os.getcwd())
    finish_distributed_run()


if __name__ == '__main__':
    main()
