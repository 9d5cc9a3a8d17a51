"""Check aesop_basicsr's SPSRNet against the original SPSR generator, in float64, on the same weights.

The original cannot ship here (it is not our code), so this check runs outside the test suite, on a file
you point it at: the AESOP authors' ``AESOP/basicsr/archs/spsr_arch.py`` (github.com/2minkyulee/AESOP-SR;
a copy of SPSR's ``SPSRNet``). It imports that file as a module (it registers ``SPSRNet`` into BasicSR's
ARCH_REGISTRY, which our fallback name allows), builds both networks at the official size (in_nc 3,
out_nc 3, nf 64, nb 23, gc 32, x4), copies the original's weights into ours with a strict load (the key
set and every shape must match), and compares the outputs on real photos (scikit-image samples, MATLAB-
bicubic LR) in float64. The weights are the original's initialisation scaled up (``--weight-gain``) so
that every layer carries signal; ``--checkpoint spsr.pth`` uses the released weights instead.

    python scripts/check_spsr_against_original.py /path/to/AESOP/basicsr/archs/spsr_arch.py
    python scripts/check_spsr_against_original.py ORIGINAL.py --write-layout tests/data/spsr_official_layout.json

``--write-layout`` writes the original's state-dict key set and shapes (the layout the shipped tests
check SPSRNet against). Exit status 0 when the largest difference is below ``--tolerance`` (1e-10).
"""
import argparse
import importlib.util
import json
import sys
from typing import Dict

import numpy as np
import torch

import aesop_basicsr  # noqa: F401  (registers SPSRNet as a fallback name before the original registers its own)
from aesop_basicsr.archs.spsr_arch import SPSRNet
from aesop_basicsr.utils.checkpoint import read_checkpoint, select_params
from aesop_basicsr.utils.sample_data import PHOTO_NAMES, load_photo, matlab_bicubic_resize


def load_original(path: str):
    spec = importlib.util.spec_from_file_location('original_spsr_arch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SPSRNet


def lr_photos(count: int, hr_size: int) -> torch.Tensor:
    """(count, 3, hr/4, hr/4) float64 MATLAB-bicubic LR of centre crops of real photos, RGB in [0, 1]."""
    batch = []
    for name in PHOTO_NAMES[:count]:
        photo = load_photo(name)
        top, left = (photo.shape[0] - hr_size) // 2, (photo.shape[1] - hr_size) // 2
        lr = matlab_bicubic_resize(photo[top:top + hr_size, left:left + hr_size], 0.25)
        batch.append(lr[..., ::-1].transpose(2, 0, 1) / 255.)  # BGR HWC uint8 -> RGB CHW
    return torch.from_numpy(np.stack(batch).copy()).double()


def layout(state: Dict[str, torch.Tensor]) -> Dict[str, list]:
    return {key: list(value.shape) for key, value in state.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('original', help="path of the original spsr_arch.py (e.g. the AESOP authors')")
    parser.add_argument('--checkpoint', help='use these weights (e.g. spsr.pth, a bare state dict)')
    parser.add_argument('--weight-gain', type=float, default=1.5,
                        help='multiply the random initial conv weights by this (default 1.5: signal everywhere)')
    parser.add_argument('--images', type=int, default=2)
    parser.add_argument('--hr-size', type=int, default=96)
    parser.add_argument('--tolerance', type=float, default=1e-10)
    parser.add_argument('--write-layout', help='write the original key set and shapes to this JSON file')
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    original = load_original(args.original)(in_nc=3, out_nc=3, nf=64, nb=23, gc=32).double().eval()
    if args.checkpoint:
        state = select_params(read_checkpoint(args.checkpoint, '--checkpoint'), None, args.checkpoint, 'param_key')
        original.load_state_dict(state, strict=True)
    else:
        with torch.no_grad():
            for name, param in original.named_parameters():
                if name.endswith('weight') and param.dim() == 4 and param.requires_grad:
                    param.mul_(args.weight_gain)
    state = original.state_dict()
    if args.write_layout:
        with open(args.write_layout, 'w') as f:  # one tensor per line
            f.write('{\n' + ',\n'.join(f'{json.dumps(k)}: {json.dumps(v)}' for k, v in layout(state).items())
                    + '\n}\n')
        print(f'wrote the original layout ({len(state)} tensors) to {args.write_layout}')

    ours = SPSRNet(in_nc=3, out_nc=3, nf=64, nb=23, gc=32).double().eval()
    assert layout(ours.state_dict()) == layout(state), 'key set or shapes differ'
    ours.load_state_dict(state, strict=True)

    x = lr_photos(args.images, args.hr_size)
    with torch.no_grad():
        expected, got = original(x), ours(x)
    diff = (expected - got).abs().max().item()
    print(f'SPSRNet vs original ({args.original}): {len(state)} tensors, '
          f'{sum(p.numel() for p in ours.parameters())} parameters, strict load ok; float64 on '
          f'{tuple(x.shape)} LR photos: output std {expected.std().item():.4f}, max |difference| {diff:.3e} '
          f'(tolerance {args.tolerance:g})')
    return 0 if diff < args.tolerance else 1


if __name__ == '__main__':
    sys.exit(main())
