"""``aesop-train -opt X.yml`` / ``python -m aesop_basicsr.train``: BasicSR's train.py with AESOP registered.

Flags are BasicSR's own (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``).
``experiments/`` and ``tb_logger/`` are written under the current directory. Two things
differ from ``basicsr/train.py``: option files with ``<REQUIRED ...>`` placeholders fail
before anything is built, and ``--auto_resume`` works on a CPU-only host.
"""
import os
from os import path as osp
from typing import Optional

import aesop_basicsr  # noqa: F401  (registers AESOP into BasicSR; must precede basicsr)
import basicsr.test
import basicsr.train
import torch
from basicsr.utils import scandir
from basicsr.utils.options import parse_options
from basicsr.utils.misc import check_resume

from aesop_basicsr.utils.options import check_no_placeholders


def parse_checked_options(root_path: str, is_train: bool = True):
    """BasicSR's ``parse_options``, then fail on placeholders left in the option file."""
    opt, args = parse_options(root_path, is_train=is_train)
    check_no_placeholders(opt, args.opt)
    return opt, args


def resume_map_location(opt: dict) -> torch.device:
    """Where to load a training state: the current CUDA device, or the CPU where there is none."""
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def latest_training_state(state_dir: str) -> Optional[str]:
    """Path of ``<iter>.state`` with the highest iteration in ``state_dir``, or None."""
    if not osp.isdir(state_dir):
        return None
    states = [name for name in scandir(state_dir, suffix='.state', recursive=False) if name[:-6].isdigit()]
    if not states:
        return None
    return osp.join(state_dir, max(states, key=lambda name: int(name[:-6])))


def load_resume_state(opt: dict) -> Optional[dict]:
    """``basicsr.train.load_resume_state`` without its unconditional ``torch.cuda.current_device()``."""
    if opt['auto_resume']:
        resume_state_path = latest_training_state(opt['path']['training_states'])
        if resume_state_path is not None:
            opt['path']['resume_state'] = resume_state_path
    else:
        resume_state_path = opt['path'].get('resume_state')
    if not resume_state_path:
        return None
    if not osp.isfile(resume_state_path):
        raise FileNotFoundError(f'path:resume_state: training state {resume_state_path!r} does not exist.')
    # a training state holds optimizer and scheduler states (a collections.Counter among them)
    # that this run's own earlier self wrote, so it is loaded as a full pickle
    resume_state = torch.load(resume_state_path, map_location=resume_map_location(opt), weights_only=False)
    check_resume(opt, resume_state['iter'])
    # print, not get_root_logger(): the pipeline sets up its logger (with the log file) only after
    # this returns, and BasicSR's get_root_logger ignores the log file once the logger exists
    print(f'Resuming from training state {resume_state_path}.', flush=True)
    return resume_state


def use_aesop_hooks() -> None:
    """Point BasicSR's train/test pipelines at the two functions above."""
    basicsr.train.parse_options = parse_checked_options
    basicsr.train.load_resume_state = load_resume_state
    basicsr.test.parse_options = lambda root_path, is_train=False: parse_checked_options(root_path, is_train)


def main(root_path: Optional[str] = None) -> None:
    use_aesop_hooks()
    basicsr.train.train_pipeline(root_path or os.getcwd())


if __name__ == '__main__':
    main()
