"""Rename an old-layout ESRGAN/BSRGAN RRDBNet checkpoint to BasicSR's RRDBNet keys.

The original ESRGAN release (RRDB_ESRGAN_x4.pth, github.com/xinntao/ESRGAN) and BSRGAN (BSRGAN.pth,
github.com/cszn/KAIR/releases/download/v1.0/BSRGAN.pth) store a bare state dict with the keys
``conv_first, RRDB_trunk.N.RDBk.convj, trunk_conv, upconv1, upconv2, HRconv, conv_last``. BasicSR's
RRDBNet has the same tensors under ``conv_first, body.N.rdbk.convj, conv_body, conv_up1, conv_up2,
conv_hr, conv_last``; this is the renaming of BasicSR's own ``convert_esrgan_model``
(scripts/model_conversion/convert_models.py in the BasicSR repository, which is not part of the pip
package), without its hard-coded paths. The output holds ``{'params': state_dict}``, as BasicSR's model
zoo files do, so ``param_key_g: params`` (or ``params_ema``, which BasicSR falls back from) loads it.

    python scripts/convert_legacy_rrdb.py BSRGAN.pth experiments/pretrained_models/BSRGAN_basicsr.pth
"""
import argparse
import sys
from collections import OrderedDict
from typing import Mapping

import torch

# old prefix -> BasicSR prefix, applied to the start of each key (RDBk inside body blocks separately)
RENAMES = (('RRDB_trunk.', 'body.'), ('trunk_conv.', 'conv_body.'), ('upconv1.', 'conv_up1.'),
           ('upconv2.', 'conv_up2.'), ('HRconv.', 'conv_hr.'))


def legacy_to_basicsr(state: Mapping[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict with BasicSR RRDBNet keys; an error names any key of neither layout."""
    out = OrderedDict()
    for key, value in state.items():
        new = key
        for old, basicsr in RENAMES:
            if key.startswith(old):
                new = basicsr + key[len(old):]
                break
        if new.startswith('body.'):
            new = new.replace('.RDB', '.rdb')
        if not new.startswith(('conv_first.', 'body.', 'conv_body.', 'conv_up1.', 'conv_up2.', 'conv_hr.',
                               'conv_last.')):
            raise KeyError(f'{key!r} is not a key of an ESRGAN-style RRDBNet (old or BasicSR layout).')
        out[new] = value
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('input', help='old-layout checkpoint (bare state dict, or one under params/params_ema)')
    parser.add_argument('output', help="where to write {'params': state_dict} with BasicSR's keys")
    args = parser.parse_args(argv)
    checkpoint = torch.load(args.input, map_location='cpu', weights_only=True)
    for key in ('params_ema', 'params'):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    try:
        state = legacy_to_basicsr(checkpoint)
    except KeyError as err:
        sys.exit(f'convert_legacy_rrdb: {args.input}: {err.args[0]}')
    torch.save({'params': state}, args.output)
    print(f'{len(state)} tensors renamed to BasicSR RRDBNet keys -> {args.output} (key: params)')


if __name__ == '__main__':
    main()
