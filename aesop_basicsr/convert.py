"""``aesop-convert CKPT.pth [-o OUT.safetensors]``: a network checkpoint as a ``.safetensors`` file.

The ``.pth`` file is read with ``weights_only=True`` (nothing in it runs). BasicSR's layout
``{'params': {...}, 'params_ema': {...}}`` is kept as ``params.<name>`` / ``params_ema.<name>``,
which every ``pretrain_network_*`` / ``param_key_*`` option reads back; a bare state dict stays bare.
The written file is read back and compared tensor by tensor before the command reports success.
"""
import argparse
import os
from os import path as osp
from typing import List, Optional, Tuple

import torch

from aesop_basicsr.utils.checkpoint import (SAFETENSORS_SUFFIX, flatten_for_safetensors, param_keys_in,
                                            read_checkpoint, save_safetensors)
from aesop_basicsr.utils.cli import CheckpointError, OptionError, command


def output_path(source: str, out: Optional[str]) -> str:
    if out:
        return out
    stem = source[:-len('.pth')] if source.endswith('.pth') else source
    return stem + SAFETENSORS_SUFFIX


def convert(source: str, out: Optional[str] = None, overwrite: bool = False) -> Tuple[str, List[str]]:
    """Write ``source`` (a ``.pth`` network checkpoint) as safetensors; return the path written and its
    state-dict keys (``params``, ``params_ema``; empty for a bare state dict)."""
    if source.endswith(SAFETENSORS_SUFFIX):
        raise OptionError(f'CKPT: {source!r} is already a safetensors file.')
    target = output_path(source, out)
    if not target.endswith(SAFETENSORS_SUFFIX):
        raise OptionError(f'--out: {target!r} must end with {SAFETENSORS_SUFFIX}.')
    if osp.abspath(target) == osp.abspath(source):
        raise OptionError(f'--out: {target!r} is the input file.')
    if osp.exists(target) and not overwrite:
        raise OptionError(f'--out: {target!r} exists; pass --overwrite to replace it.')
    if osp.dirname(target) and not osp.isdir(osp.dirname(target)):
        raise OptionError(f'--out: the folder of {target!r} does not exist.')
    flat = flatten_for_safetensors(read_checkpoint(source, 'CKPT'), source)
    save_safetensors(flat, target, metadata={'format': 'pt', 'converted_from': osp.basename(source)})
    written = read_checkpoint(target, '--out')
    if written.keys() != flat.keys() or not all(torch.equal(written[k], flat[k]) for k in flat):
        os.remove(target)
        raise CheckpointError(f'--out: {target!r} did not read back identical to {source!r}; removed it.')
    return target, param_keys_in(written)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='aesop-convert', description=__doc__.split('\n')[0].strip('`'))
    parser.add_argument('ckpt', metavar='CKPT', help='a .pth network checkpoint (BasicSR net_*.pth, an AESOP AE)')
    parser.add_argument('-o', '--out', help='the .safetensors file to write (default: CKPT with .safetensors)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    return parser.parse_args(argv)


@command('aesop-convert')
def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    target, keys = convert(args.ckpt, args.out, args.overwrite)
    print(f'{target}  ({", ".join(keys) if keys else "bare state dict"}; {osp.getsize(target):,} bytes)')


if __name__ == '__main__':
    main()
