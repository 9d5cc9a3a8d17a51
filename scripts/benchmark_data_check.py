"""Cost of the data check (aesop_basicsr.data.dataset_check) on generated paired datasets of 10,000 and 100,000 files.

Writes N/2 HR and N/2 LR PNG images (real photo crops, 64 and 16 px: the header check reads the same
bytes of an image whatever its size) under a scratch folder, runs the check as ``aesop-train`` does
(``headers``, and ``full`` on the smallest set) and prints the CPU time (user + sys of this process)
and the wall time per size, and per 10,000 files. The page cache is warm (the files were just
written); on a cold or network file system each header costs a read more.

    python scripts/benchmark_data_check.py                       # 10,000 and 100,000 files
    python scripts/benchmark_data_check.py --files 10000 --full  # also decode every image once
"""
import argparse
import os
import shutil
import tempfile
import time
from os import path as osp

import cv2

from aesop_basicsr.data.dataset_check import check_datasets
from aesop_basicsr.utils.sample_data import bicubic_downscale, load_photo


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def write_dataset(root: str, files: int) -> dict:
    """``files`` images: half HR (64 px), half LR (16 px), as PairedImageDataset folders."""
    hr = load_photo('astronaut')[:64, :64]
    encoded = {'gt': cv2.imencode('.png', hr)[1].tobytes(), 'lq': cv2.imencode('.png', bicubic_downscale(hr, 4))[1]
               .tobytes()}
    folders = {'gt': osp.join(root, 'hr'), 'lq': osp.join(root, 'lr_x4')}
    for role, folder in folders.items():
        os.makedirs(folder)
        for i in range(files // 2):
            with open(osp.join(folder, f'{i:07d}.png'), 'wb') as f:
                f.write(encoded[role])
    return folders


def measure(folders: dict, mode: str) -> tuple:
    opt = {'scale': 4, 'datasets': {'train': {
        'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'}, 'dataroot_gt': folders['gt'],
        'dataroot_lq': folders['lq'], 'gt_size': 64}}}
    cpu, wall = cpu_seconds(), time.perf_counter()
    summary = check_datasets(opt, 'benchmark', mode)
    return cpu_seconds() - cpu, time.perf_counter() - wall, summary.images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, nargs='+', default=[10_000, 100_000])
    parser.add_argument('--full', action='store_true', help='also time --data-check full on the smallest set')
    parser.add_argument('--scratch', default=tempfile.gettempdir(), help='where the images are written (and removed)')
    args = parser.parse_args()
    print(f'{os.cpu_count()} CPUs; headers mode runs in one thread.')
    print('| files | mode | CPU s (user+sys) | wall s | CPU s per 10,000 files |')
    print('| ---: | --- | ---: | ---: | ---: |')
    for index, files in enumerate(args.files):
        root = tempfile.mkdtemp(prefix='aesop-data-check-', dir=args.scratch)
        try:
            folders = write_dataset(root, files)
            modes = ['headers'] + (['full'] if args.full and index == 0 else [])
            for mode in modes:
                cpu, wall, images = measure(folders, mode)
                assert images == files // 2 * 2, images
                print(f'| {images:,} | {mode} | {cpu:.2f} | {wall:.2f} | {cpu / images * 10_000:.2f} |', flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
