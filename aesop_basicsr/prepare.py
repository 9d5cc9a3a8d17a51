"""``aesop-prepare``: a folder of HR images -> the paired data BasicSR's PairedImageDataset reads.

For every image in ``--input`` (not recursive) it writes, under ``--output``:

- ``HR_mod{m}/<name>.png``: the HR image cropped to a multiple of ``--mod`` m (BasicSR's ``mod_crop``;
  m defaults to the scale, the paper's BSD100mod12 and LSDIR250mod12 use ``--mod 12``);
- ``LR_bicubic_x{s}/<name>.png`` (``LR_bicubic_x{s}_mod{m}`` when m is not the scale): its MATLAB-bicubic
  downscale, BasicSR's ``imresize`` algorithm computed in float64 as the authors made their benchmarks
  (BasicSR's own ``imresize`` computes in float32; the two differ by one grey level on a few pixels);
- with ``--subimages``: ``HR_mod{m}_sub/<name>_s001.png ...`` and ``LR_bicubic_x{s}..._sub/<name>_s001.png ...``,
  overlapping crops as BasicSR's ``scripts/data_preparation/extract_subimages.py`` makes them (HR crop 480,
  step 240; the LR crops are the same regions of the LR image), so training reads small files.

Files are written atomically, so an interrupted run leaves no half-written image, and a re-run skips the
files that exist. The input folder is never written to.

    aesop-prepare --input datasets/DF2K/HR --output datasets/DF2K --scale 4 --subimages
    aesop-prepare --input datasets/Set5/original --output datasets/Set5 --scale 4
    aesop-prepare --input datasets/BSD100/original --output datasets/BSD100mod12 --scale 4 --mod 12
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
import multiprocessing
from os import path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from basicsr.data.transforms import mod_crop
from PIL import Image
from tqdm import tqdm

from aesop_basicsr.utils.cli import command
from aesop_basicsr.utils.image_io import write_png
from aesop_basicsr.utils.matlab_resize import matlab_bicubic_downscale

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def bicubic_downscale_float64(hr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 HR (H, W[, C]) -> uint8 LR by 1/scale: BasicSR's ``imresize`` computed in float64, rounded."""
    lr = matlab_bicubic_downscale(hr.astype(np.float64) / 255., scale)
    return np.clip(np.round(lr * 255.), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class SubImageOptions:
    """BasicSR's extract_subimages settings, in HR pixels (the LR crops are these divided by the scale)."""
    crop_size: int = 480
    step: int = 240
    thresh_size: int = 0


@dataclass
class Outcome:
    name: str
    written: int = 0  # files written by this run
    skipped: bool = False  # everything was already there
    too_small_for_subimages: bool = False


def output_folders(output: str, scale: int, subimages: bool, mod: Optional[int] = None) -> Dict[str, str]:
    """HR_mod{mod} and LR_bicubic_x{scale} (suffixed _mod{mod} when mod is not the scale), and their _sub."""
    mod = mod or scale
    lr = f'LR_bicubic_x{scale}' + ('' if mod == scale else f'_mod{mod}')
    folders = {'hr': osp.join(output, f'HR_mod{mod}'), 'lr': osp.join(output, lr)}
    if subimages:
        folders.update(hr_sub=folders['hr'] + '_sub', lr_sub=folders['lr'] + '_sub')
    return folders


def list_images(folder: str) -> List[str]:
    """Image file names in ``folder`` (not recursive), sorted; error on two with the same stem."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'--input: {folder!r} is not a folder.')
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(folder, n)))
    if not names:
        raise FileNotFoundError(f'--input: no images ({", ".join(IMAGE_EXTENSIONS)}) in {folder!r}.')
    stems: Dict[str, str] = {}
    for name in names:
        stem = osp.splitext(name)[0]
        if stem in stems:
            raise ValueError(f'--input: {stems[stem]!r} and {name!r} would both be written as {stem}.png; '
                             'rename one of them.')
        stems[stem] = name
    return names


def check_not_inside_input(input_dir: str, folders: Dict[str, str]) -> None:
    """Refuse any output folder that is the input folder or lies inside it."""
    source = osp.realpath(input_dir)
    for folder in folders.values():
        target = osp.realpath(folder)
        if target == source or target.startswith(source + os.sep):
            raise ValueError(f'--output: {folder!r} is inside the input folder {input_dir!r}; aesop-prepare never '
                             'writes into its input. Choose an --output outside it.')


def check_options(scale: int, sub: Optional[SubImageOptions], mod: Optional[int] = None) -> None:
    if scale < 1:
        raise ValueError(f'--scale: {scale} must be a positive integer.')
    if mod is not None and (mod < 1 or mod % scale):
        raise ValueError(f'--mod: {mod} must be a positive multiple of --scale {scale}, so that the LR image '
                         'covers exactly the HR image.')
    if sub is None:
        return
    for flag, value in (('--crop-size', sub.crop_size), ('--step', sub.step), ('--thresh-size', sub.thresh_size)):
        if value < 0 or (flag != '--thresh-size' and value == 0):
            raise ValueError(f'{flag}: {value} must be positive.')
        if value % scale:
            raise ValueError(f'{flag}: {value} is not divisible by --scale {scale}; HR and LR sub-images would '
                             'not cover the same region.')


def subimage_origins(height: int, width: int, sub: SubImageOptions) -> List[Tuple[int, int]]:
    """Top-left corners of the crops, in BasicSR's extract_subimages order (rows, then columns).

    Crops start every ``step`` pixels; one more is added flush with the far edge when more than
    ``thresh_size`` pixels would be left uncovered. Empty when the image is smaller than a crop.
    """

    def starts(length: int) -> List[int]:
        if length < sub.crop_size:
            return []
        space = list(range(0, length - sub.crop_size + 1, sub.step))
        if length - (space[-1] + sub.crop_size) > sub.thresh_size:
            space.append(length - sub.crop_size)
        return space

    return [(top, left) for top in starts(height) for left in starts(width)]


def subimage_name(stem: str, index: int) -> str:
    return f'{stem}_s{index:03d}.png'


def planned_files(stem: str, folders: Dict[str, str], hr_size: Optional[Tuple[int, int]],
                  sub: Optional[SubImageOptions]) -> Dict[str, List[str]]:
    """Every file this image yields, per folder; sub-image names need the mod-cropped HR size (h, w)."""
    files = {'hr': [osp.join(folders['hr'], f'{stem}.png')], 'lr': [osp.join(folders['lr'], f'{stem}.png')]}
    if sub is not None and hr_size is not None:
        count = len(subimage_origins(hr_size[0], hr_size[1], sub))
        files['hr_sub'] = [osp.join(folders['hr_sub'], subimage_name(stem, i + 1)) for i in range(count)]
        files['lr_sub'] = [osp.join(folders['lr_sub'], subimage_name(stem, i + 1)) for i in range(count)]
    return files


def prepare_image(name: str, input_dir: str, folders: Dict[str, str], scale: int,
                  sub: Optional[SubImageOptions], mod: Optional[int] = None) -> Outcome:
    """Write whatever of this image's outputs is missing."""
    stem = osp.splitext(name)[0]
    outcome = Outcome(name)
    hr_file = osp.join(folders['hr'], f'{stem}.png')
    if osp.isfile(hr_file):  # finished before? the PNG header gives the size without decoding it
        with Image.open(hr_file) as done:
            width, height = done.size
        files = planned_files(stem, folders, (height, width), sub)
        if all(osp.isfile(f) for group in files.values() for f in group):
            outcome.skipped = True
            outcome.too_small_for_subimages = sub is not None and not files['hr_sub']
            return outcome

    source = osp.join(input_dir, name)
    image = cv2.imread(source, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'--input: {source!r} is not an image OpenCV can read.')
    hr = mod_crop(image, mod or scale)
    if hr.shape[0] == 0 or hr.shape[1] == 0:
        raise ValueError(f'--input: {source!r} ({image.shape[1]}x{image.shape[0]}) is smaller than '
                         f'--mod {mod or scale}.')
    lr = bicubic_downscale_float64(hr, scale)
    files = planned_files(stem, folders, hr.shape[:2], sub)
    images = {'hr': [hr], 'lr': [lr]}
    if sub is not None:
        origins = subimage_origins(hr.shape[0], hr.shape[1], sub)
        outcome.too_small_for_subimages = not origins
        lr_crop = sub.crop_size // scale
        images['hr_sub'] = [hr[t:t + sub.crop_size, l:l + sub.crop_size] for t, l in origins]
        images['lr_sub'] = [lr[t // scale:t // scale + lr_crop, l // scale:l // scale + lr_crop] for t, l in origins]
    for group, paths in files.items():
        for path, img in zip(paths, images[group]):
            if not osp.isfile(path):
                write_png(path, np.ascontiguousarray(img))
                outcome.written += 1
    return outcome


def prepare(input_dir: str, output: str, scale: int = 4, sub: Optional[SubImageOptions] = None, workers: int = 1,
            progress: bool = True, mod: Optional[int] = None) -> Dict[str, object]:
    """Prepare every image of ``input_dir`` into ``output``; returns a summary (see :func:`main`).

    ``mod``: HR sides are cropped to a multiple of it (default: the scale).
    """
    check_options(scale, sub, mod)
    folders = output_folders(output, scale, sub is not None, mod)
    check_not_inside_input(input_dir, folders)
    names = list_images(input_dir)
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    start = time.time()
    work = partial(prepare_image, input_dir=input_dir, folders=folders, scale=scale, sub=sub, mod=mod)
    bar = tqdm(total=len(names), unit='image', desc='aesop-prepare', disable=not progress)
    outcomes: List[Outcome] = []
    if workers > 1:
        # spawn, not fork: a forked child of a process whose OpenCV/BLAS thread pools are running can deadlock
        with multiprocessing.get_context('spawn').Pool(workers) as pool:
            for outcome in pool.imap_unordered(work, names):
                outcomes.append(outcome)
                bar.update()
    else:
        for name in names:
            outcomes.append(work(name))
            bar.update()
    bar.close()
    return {
        'images': len(names),
        'prepared': sum(not o.skipped for o in outcomes),
        'skipped': sum(o.skipped for o in outcomes),
        'files_written': sum(o.written for o in outcomes),
        'too_small_for_subimages': sorted(o.name for o in outcomes if o.too_small_for_subimages),
        'folders': folders,
        'seconds': time.time() - start,
    }


def format_summary(summary: Dict[str, object], sub: Optional[SubImageOptions]) -> str:
    lines = [f"{summary['images']} images: {summary['prepared']} prepared, {summary['skipped']} already done "
             f"(skipped); {summary['files_written']} files written in {summary['seconds']:.1f} s."]
    for key, folder in summary['folders'].items():
        count = len([n for n in os.listdir(folder) if n.endswith('.png')])
        lines.append(f'  {folder}: {count} images')
    small = summary['too_small_for_subimages']
    if sub is not None and small:
        lines.append(f'  {len(small)} images are smaller than --crop-size {sub.crop_size} and have no sub-images: '
                     f'{", ".join(small[:5])}{" ..." if len(small) > 5 else ""}')
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='aesop-prepare', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of HR images (read only)')
    parser.add_argument('--output', required=True, help='root of the folders to write (not inside --input)')
    parser.add_argument('--scale', type=int, default=4, help='SR scale (the LR is HR / scale)')
    parser.add_argument('--mod', type=int, default=None,
                        help='crop HR sides to a multiple of this (default: the scale, 4; the paper uses 12 for '
                             'BSD100mod12 and LSDIR250mod12); a multiple of --scale')
    parser.add_argument('--subimages', action='store_true', help='also write BasicSR-style sub-images for training')
    parser.add_argument('--crop-size', type=int, default=480, help='HR sub-image size')
    parser.add_argument('--step', type=int, default=240, help='HR stride between sub-images')
    parser.add_argument('--thresh-size', type=int, default=0,
                        help='add a last crop flush with the edge when more than this many pixels are left over')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1), help='processes')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


@command('aesop-prepare')
def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    sub = SubImageOptions(args.crop_size, args.step, args.thresh_size) if args.subimages else None
    try:
        summary = prepare(args.input, args.output, args.scale, sub, args.workers, progress=not args.no_progress,
                          mod=args.mod)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'aesop-prepare: error: {err}')
    print(format_summary(summary, sub))


if __name__ == '__main__':
    main()
