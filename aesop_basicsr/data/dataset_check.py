"""The data check before training: every image of every dataset readable, every GT ``scale`` x its LQ, all at once.

Shared by ``aesop-train`` (before anything is built; ``--data-check off`` skips it) and ``aesop-check``
(for runs started by BasicSR's own ``train.py``). For every dataset of the option file that
:mod:`~aesop_basicsr.data.dataset_files` covers (paired, LQ-only and GT-only; disk and lmdb):

- every ``filename_tmpl``, ``meta_info_file``/``meta_info`` entry and lmdb key resolves to an image;
- every image is readable as BasicSR reads it, with 8- or 16-bit samples, grey or colour
  (``color: y`` is BasicSR's conversion after reading: any of these is accepted);
- training pairs (``train*`` keys): GT exactly ``scale`` x LQ in width and height, as
  ``paired_random_crop`` requires, and LQ at least the LQ patch ``gt_size // scale``;
- other pairs (validation, test): ``LQ x scale <= GT < (LQ + 1) x scale``, since BasicSR crops the
  GT to ``LQ x scale`` there (benchmark HR images that are not a multiple of the scale).

Every problem is reported in one raise: one line per kind of problem and dataset, naming the option
key, the first few files and how many there are (:class:`DataCheckError`).

Modes: ``headers`` (default) reads each image's header only (Pillow; see the README for the
measured cost); ``full`` also decodes every image as BasicSR does (OpenCV), which finds files
truncated after their header, at the cost of a full read; ``off`` checks nothing.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Tuple

from aesop_basicsr.data.dataset_files import DatasetFiles, DiskImages, Problem, resolve_dataset
from aesop_basicsr.data.image_header import (ImageSize, UnreadableImage, decode_as_basicsr,
                                             pillow_size_limit_lifted)
from aesop_basicsr.utils.cli import DataError

MODES = ('headers', 'full', 'off')
NAMED = 3  # files named per problem; the count gives the rest
ROLE_NAMES = {'gt': 'GT', 'lq': 'LQ'}


class DataCheckError(DataError):
    """The data check found problems; the message has one line per kind of problem and dataset."""


@dataclass
class CheckSummary:
    """What the data check read: ``str()`` is one line for the log."""
    mode: str
    datasets: int = 0
    images: int = 0
    seconds: float = 0.
    not_checked: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.mode == 'off':
            return 'Data check: off (--data-check off).'
        skipped = f'; not checked (type or io_backend not covered): {", ".join(self.not_checked)}' \
            if self.not_checked else ''
        return (f'Data check ({self.mode}): {self.images} images of {self.datasets} datasets in {self.seconds:.2f} s, '
                f'no problems{skipped}.')


def _decode(images: Any, key: str) -> ImageSize:
    images.header(key)  # the specific reasons first: empty, not an image, 32-bit samples
    return decode_as_basicsr(images.content(key))  # the size BasicSR gets


def _read_one(read, images: Any, key: str) -> Tuple[str, Any]:
    try:
        return key, read(images, key)
    except UnreadableImage as err:
        return key, err
    except OSError as err:
        return key, UnreadableImage(f'cannot be read: {err.strerror or err}')


def read_images(prefix: str, files: DatasetFiles, mode: str,
                problems: List[Problem]) -> Dict[Tuple[str, str], ImageSize]:
    """(role, key) -> size of every image of ``files``; an unreadable one adds to ``problems`` instead."""
    sizes = {}
    for role, images in files.roles.items():
        keys = list(dict.fromkeys(sample[role] for sample in files.samples))
        if mode == 'full' and isinstance(images, DiskImages):
            # OpenCV decodes without holding the GIL
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                results = list(pool.map(lambda key: _read_one(_decode, images, key), keys))
        else:
            read = _decode if mode == 'full' else (lambda images_, key: images_.header(key))
            results = [_read_one(read, images, key) for key in keys]
        unreadable = Problem(f'{prefix}:dataroot_{role}', f'{len(keys)} {ROLE_NAMES[role]} images', 'cannot be read')
        for key, result in results:
            if isinstance(result, UnreadableImage):
                unreadable.items.append(f'{images.name(key)} ({result})')
            else:
                sizes[role, key] = result
        if unreadable.items:
            problems.append(unreadable)
    return sizes


def pair_problems(prefix: str, name: str, dataset: Mapping, scale: Any, files: DatasetFiles,
                  sizes: Dict[Tuple[str, str], ImageSize]) -> List[Problem]:
    """GT vs LQ sizes of each readable pair, and LQ vs the LQ patch for training sets (see the module doc)."""
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        return []
    train = name.split('_')[0] == 'train'
    gt_size = dataset.get('gt_size')
    patch = gt_size // scale if train and isinstance(gt_size, int) else 0
    if train:
        mismatch = Problem(prefix, '', f'where GT is not exactly scale {scale} x LQ')
    else:
        mismatch = Problem(prefix, '', f'where GT is not scale {scale} x LQ (outside training BasicSR crops GT to LQ x '
                           f'{scale}, so up to {scale - 1} px more is allowed)')
    small = Problem(prefix, '', f'where LQ is smaller than the LQ patch {patch}x{patch} (gt_size {gt_size} / scale '
                    f'{scale})')
    gt_images, lq_images = files.roles['gt'], files.roles['lq']
    pairs = 0
    for sample in files.samples:
        gt, lq = sizes.get(('gt', sample['gt'])), sizes.get(('lq', sample['lq']))
        if gt is None or lq is None:
            continue
        pairs += 1
        expected = ImageSize(lq.width * scale, lq.height * scale)
        fits = gt == expected if train else (expected.width <= gt.width < expected.width + scale
                                             and expected.height <= gt.height < expected.height + scale)
        if not fits:
            mismatch.items.append(f'{gt_images.name(sample["gt"])} {gt}, LQ {lq_images.name(sample["lq"])} {lq} '
                                  f'(x{scale}: {expected})')
        elif lq.width < patch or lq.height < patch:
            small.items.append(f'{lq_images.name(sample["lq"])} {lq}')
    found = [problem for problem in (mismatch, small) if problem.items]
    for problem in found:
        problem.total = f'{pairs} pairs'  # the readable ones
    return found


def report(problems: List[Problem], opt_file: str) -> str:
    """One line per problem, naming the option file; with several, a first line that counts them."""
    if len(problems) == 1:
        return problems[0].line(NAMED, opt_file)
    return f'the data check found {len(problems)} problems in {opt_file}:\n' + '\n'.join(
        f'  {problem.line(NAMED)}' for problem in problems)


def check_datasets(opt: Mapping[str, Any], opt_file: str, mode: str = 'headers') -> CheckSummary:
    """Check every dataset of an option dict (raw or parsed by BasicSR; folders already checked to exist).

    Args:
        opt: The options; ``datasets`` and ``scale`` are read.
        opt_file: The option file, for the message.
        mode: ``headers``, ``full`` or ``off`` (see the module doc).

    Returns:
        What was checked (``str()`` is a log line).

    Raises:
        DataCheckError: naming every problem found (see :func:`report`).
        ValueError: an unknown ``mode``.
    """
    if mode not in MODES:
        raise ValueError(f'data check mode {mode!r} is not one of {", ".join(MODES)}.')
    summary = CheckSummary(mode)
    if mode == 'off':
        return summary
    start = time.perf_counter()
    problems: List[Problem] = []
    with pillow_size_limit_lifted():
        for name, dataset in (opt.get('datasets') or {}).items():
            if not isinstance(dataset, Mapping):
                continue
            prefix = f'datasets:{name}'
            files = resolve_dataset(prefix, dataset)
            if files is None:
                summary.not_checked.append(f'{prefix} ({dataset.get("type")})')
                continue
            try:
                problems += files.problems
                sizes = read_images(prefix, files, mode, problems)
                if set(files.roles) == {'gt', 'lq'}:
                    problems += pair_problems(prefix, str(name), dataset, opt.get('scale'), files, sizes)
            finally:
                files.close()
            summary.datasets += 1
            summary.images += len(sizes)
    summary.seconds = time.perf_counter() - start
    if problems:
        raise DataCheckError(report(problems, opt_file))
    return summary
