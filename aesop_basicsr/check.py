"""``aesop-check -opt X.yml [Y.yml ...]`` / ``python -m aesop_basicsr.check``: check option files and their data.

For runs started by BasicSR's own ``train.py`` (or Real-ESRGAN's, or a project's): the checks that
``aesop-train`` runs before it builds anything, without training. Each option file is read safely
(a tag that would build a Python object is refused), then checked as ``aesop-train`` checks it
(``<REQUIRED ...>`` placeholders, ``num_gpu`` and CUDA-only models on a host without CUDA, patch
sizes, AESOPLoss auto-encoders and their scale, dataset folders), then its data
(:mod:`aesop_basicsr.data.dataset_check`: headers of every image; ``--full`` decodes them all).

Prints one line per option file; every problem is named, and the command exits with status 2 if
there is any.
"""
import argparse
import os
from copy import deepcopy
from typing import Any, Dict, List, Optional

import torch

from aesop_basicsr.data.dataset_check import CheckSummary, check_datasets
from aesop_basicsr.utils.cli import (DEBUG_FLAG, UserErrorExit, command, debug_requested, is_user_error,
                                     report_user_error)
from aesop_basicsr.utils.options import check_before_run, read_option_file

PROG = 'aesop-check'
DATASET_PATH_KEYS = ('dataroot_gt', 'dataroot_lq', 'meta_info_file', 'meta_info')


def options_as_basicsr_parses(raw: Dict[str, Any]) -> Dict[str, Any]:
    """The parts of BasicSR's ``parse_options`` the checks depend on, without its side effects.

    ``num_gpu: auto`` becomes the CUDA device count; each dataset gets ``phase`` (its key up to the
    first ``_``) and ``scale``, and ``~`` is expanded in its paths.
    """
    opt = deepcopy(raw)
    if opt.get('num_gpu') == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()
    for name, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, dict):
            continue
        dataset['phase'] = str(name).split('_')[0]
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for key in DATASET_PATH_KEYS:
            if isinstance(dataset.get(key), str):
                dataset[key] = os.path.expanduser(dataset[key])
    return opt


def check_option_file(opt_file: str, data_check: str = 'headers') -> CheckSummary:
    """All checks on one option file; raises a user error (``aesop_basicsr.utils.cli``) naming the first problem
    of the options, or every problem of the data."""
    opt = options_as_basicsr_parses(read_option_file(opt_file))
    check_before_run(opt, opt_file, torch.cuda.is_available())
    return check_datasets(opt, opt_file, data_check)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(': ', 1)[-1])
    parser.add_argument('-opt', nargs='+', required=True, metavar='OPTION_FILE', help='BasicSR option files')
    parser.add_argument('--full', action='store_true',
                        help='decode every image as BasicSR does (finds files truncated after their header)')
    parser.add_argument(DEBUG_FLAG, action='store_true', help='show the traceback of each error')
    return parser.parse_args(argv)


@command(PROG, keep_debug_flag=True)
def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    debug = args.debug or debug_requested([])
    failed: List[str] = []
    for opt_file in args.opt:
        try:
            summary = check_option_file(opt_file, 'full' if args.full else 'headers')
        except Exception as err:  # noqa: B902  (user errors are reported for each file; bugs raise)
            if not is_user_error(err):
                raise
            failed.append(report_user_error(PROG, err, debug))
            continue
        print(f'{PROG}: {opt_file}: options checked. {summary}', flush=True)
    if failed:
        raise UserErrorExit(failed[-1])


if __name__ == '__main__':
    main()
