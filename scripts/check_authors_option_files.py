"""Check the authors' own option files against aesop_basicsr.compat, from a clone of their repository.

Their 23 option files (github.com/2minkyulee/AESOP-SR, ``AESOP/options/``) are their code and are not shipped
here; the shipped tests use descriptions of them (tests/authors_fork_options.py). This script, run by hand
outside the test suite, reads the real files and

1. checks that each description has exactly the real file's key paths and ``type`` names;
2. lists every type the files name and what BasicSR's registry resolves it to (registered, or one of
   aesop_basicsr's fallbacks for the fork's names);
3. builds each of their test files' models at full size, exactly as written except for ``num_gpu: 0`` and
   ``pretrain_network_g: ~`` (no weights), runs the network on a 1x3x24x24 LR image, and prints what it built;
4. builds each of their training files' models at full size the same way (``autoencoder_load:path`` is a
   full-size stand-in AE written here; VGG19 comes from the torch hub cache or a stand-in in a private one).

    git clone https://github.com/2minkyulee/AESOP-SR /tmp/AESOP-SR
    python scripts/check_authors_option_files.py /tmp/AESOP-SR        # a clone (work tree) ...
    python scripts/check_authors_option_files.py /path/to/AESOP-SR.git --rev HEAD   # ... or a bare repository

Exit status 1 if a description differs from its file or a build fails (types no branch registers yet, e.g.
DRCT/SPSRNet before the spandrel architectures are merged, are reported and skipped).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from os import path as osp
from typing import Dict, List, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO_ROOT, 'tests'))

import aesop_basicsr  # noqa: E402,F401  (registers the fallbacks)
import torch  # noqa: E402
import yaml  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from basicsr.utils.options import ordered_yaml  # noqa: E402
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY  # noqa: E402

import authors_fork_options as fork  # noqa: E402
from aesop_basicsr.utils.fallback_registry import is_registered  # noqa: E402

OPTIONS_DIR = 'AESOP/options'


def read_their_file(repo: str, rel: str, rev: str) -> dict:
    """One of their option files, parsed as BasicSR's parse_options reads it."""
    work_tree_file = osp.join(repo, OPTIONS_DIR, rel)
    if osp.isfile(work_tree_file):
        with open(work_tree_file) as f:
            text = f.read()
    else:
        text = subprocess.run(['git', '--git-dir', repo, 'show', f'{rev}:{OPTIONS_DIR}/{rel}'], check=True,
                              capture_output=True, text=True).stdout
    return yaml.load(text, Loader=ordered_yaml()[0])


def plain(node):
    """OrderedDicts as dicts, recursively (for comparison and building)."""
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def compare(real: dict, described: dict) -> List[str]:
    """What differs between a real file and its description: key paths, and the type at each typed block."""
    real_keys, described_keys = set(fork.key_paths(real)), set(fork.key_paths(described))
    problems = [f'  only in their file: {k}' for k in sorted(real_keys - described_keys)]
    problems += [f'  only in the description: {k}' for k in sorted(described_keys - real_keys)]
    real_types, described_types = fork.types_of(real), fork.types_of(described)
    problems += [f'  {where}: type {real_types[where]!r} in their file, {described_types.get(where)!r} described'
                 for where in sorted(real_types) if real_types[where] != described_types.get(where)]
    return problems


REGISTRIES = {'model': MODEL_REGISTRY, 'arch': ARCH_REGISTRY, 'loss': LOSS_REGISTRY, 'metric': METRIC_REGISTRY}


def kind_of(where: str) -> str:
    if where == 'model_type':
        return 'model'
    if where.startswith('network_') or 'autoencoder_arch' in where or where.endswith('dec_opt'):
        return 'arch'
    if where.startswith('train:optim_'):
        return 'optimizer'
    if where == 'train:scheduler':
        return 'scheduler'
    if where.startswith('train:'):
        return 'loss'
    if ':metrics:' in where:
        return 'metric'
    if where.endswith('io_backend'):
        return 'io'
    return 'dataset'


def resolves(kind: str, name: str) -> bool:
    """Whether BasicSR's lookup finds ``name``: registered, a fallback, or under BasicSR's ``_basicsr`` suffix."""
    registry = REGISTRIES.get(kind)
    return registry is None or is_registered(registry, name) or f'{name}_basicsr' in registry


def resolution(kind: str, name: str) -> str:
    registry = REGISTRIES.get(kind)
    if registry is None:
        return f'BasicSR {kind}'
    if not resolves(kind, name):
        return 'NOT REGISTERED'
    if f'{name}_basicsr' in registry and not is_registered(registry, name):
        return f'registered by BasicSR as {name}_basicsr'
    obj = registry.get(name)
    how = 'registered' if name in registry else 'fallback'
    return f'{how}: {getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", obj)}'


def count_parameters(net: torch.nn.Module) -> str:
    return f'{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M parameters'


def build_test_file(opt: dict) -> str:
    opt = plain(opt)
    opt.update(num_gpu=0, is_train=False, dist=False, rank=0, world_size=1)
    opt['path']['pretrain_network_g'] = None
    model = build_model(opt)
    net = model.get_bare_model(model.net_g)
    lq = torch.rand(1, 3, 24, 24) if opt['network_g']['type'] != 'AutoEncoder_RRDBNet' else torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        out = net(lq)
    metrics = ', '.join(f'{name}: {m["type"]}' for name, m in (opt['val'].get('metrics') or {}).items()) or 'none'
    return (f'{type(model).__name__}, net_g {type(net).__name__} ({count_parameters(net)}), '
            f'{tuple(lq.shape)} -> {tuple(out.shape)}; metrics {metrics}')


def build_training_file(opt: dict, ae_file: str) -> str:
    opt = plain(opt)
    opt.update(num_gpu=0, is_train=True, dist=False, rank=0, world_size=1)
    for key in opt['path']:
        if key.startswith('pretrain_network'):
            opt['path'][key] = None
    if 'aesop_opt' in opt['train']:
        opt['train']['aesop_opt']['autoencoder_load']['path'] = ae_file
    if opt['model_type'] == 'AesopRealESRGANArtifactsDisModel' and not torch.cuda.is_available():
        return 'skipped: Real-ESRGAN\'s model calls .cuda() (their code and BasicSR\'s); run on a CUDA host'
    model = build_model(opt)
    parts = [f'{type(model).__name__}, net_g {type(model.get_bare_model(model.net_g)).__name__} '
             f'({count_parameters(model.net_g)})']
    if hasattr(model, 'net_d'):
        parts.append(f'net_d {type(model.get_bare_model(model.net_d)).__name__} ({count_parameters(model.net_d)})')
    # ESRGANLDLModel wraps its pixel loss and the LDL term in one criterion: name the pixel loss itself
    pixel = getattr(getattr(model, 'cri_pix', None), 'pixel', getattr(model, 'cri_pix', None))
    losses = [f'{name} {type(loss).__name__}' for name, loss in (('cri_pix', pixel), ('cri_lr', getattr(
        model, 'cri_lr', None)), ('cri_ldl', getattr(model, 'cri_ldl', None))) if loss is not None]
    return ', '.join(parts + losses)


def stand_in_files(folder: str) -> str:
    """A full-size auto-encoder in their layout (random weights), and VGG19 where the hub cache has none."""
    from basicsr.archs import build_network
    ae_file = osp.join(folder, 'AE_stand_in.pth')
    torch.save({'params_ema': build_network(fork.autoencoder(full=True)).state_dict()}, ae_file)
    vgg = osp.join(torch.hub.get_dir(), 'checkpoints', 'vgg19-dcbb9e9d.pth')
    if not osp.isfile(vgg):
        from torchvision.models import vgg19
        os.environ['TORCH_HOME'] = osp.join(folder, 'torch_home')
        os.makedirs(osp.join(folder, 'torch_home', 'hub', 'checkpoints'))
        torch.save(vgg19().state_dict(), osp.join(folder, 'torch_home', 'hub', 'checkpoints', 'vgg19-dcbb9e9d.pth'))
    return ae_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('repo', help="a clone of 2minkyulee/AESOP-SR (its root), or its bare git directory")
    parser.add_argument('--rev', default='HEAD', help='with a bare repository: the revision to read')
    parser.add_argument('--no-build', action='store_true', help='compare keys and resolve types only')
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    described = {**{rel: (fn, True) for rel, fn in fork.TRAINING_FILES.items()},
                 **{rel: (fn, False) for rel, fn in fork.TEST_FILES.items()}}
    failures = 0
    real: Dict[str, dict] = {}
    print(f'1. Their {len(described)} option files against tests/authors_fork_options.py')
    for rel, (fn, _) in described.items():
        real[rel] = read_their_file(args.repo, rel, args.rev)
        problems = compare(plain(real[rel]), fn(fork.Data(), True))
        failures += bool(problems)
        print(f'  {"OK  " if not problems else "DIFF"} {rel}')
        for line in problems:
            print('    ' + line)

    print('\n2. Their types')
    types: Dict[Tuple[str, str], set] = {}
    for rel, opt in real.items():
        for where, name in list(fork.types_of(plain(opt)).items()) + [('model_type', opt['model_type'])]:
            types.setdefault((kind_of(where), name), set()).add(rel)
    for (kind, name), files in sorted(types.items()):
        print(f'  {kind:9s} {name:34s} {resolution(kind, name)}  ({len(files)} file{"s" * (len(files) > 1)})')

    if args.no_build:
        return 1 if failures else 0
    print('\n3. Their test files, built at full size (num_gpu 0, no weights)')
    with tempfile.TemporaryDirectory() as folder:
        for rel in fork.TEST_FILES:
            failures += report(rel, lambda: build_test_file(real[rel]), real[rel])
        print('\n4. Their training files, built at full size (num_gpu 0, no pretrained weights, stand-in AE)')
        ae_file = stand_in_files(folder)
        for rel in fork.TRAINING_FILES:
            failures += report(rel, lambda: build_training_file(real[rel], ae_file), real[rel])
    return 1 if failures else 0


def report(rel: str, build, opt: dict) -> int:
    missing = [name for where, name in fork.types_of(plain(opt)).items() if not resolves(kind_of(where), name)]
    if missing:
        print(f'  SKIP {rel}: {", ".join(sorted(set(missing)))} not registered (the spandrel architectures)')
        return 0
    start = time.time()
    try:
        line = build()
    except Exception as err:  # report every file
        print(f'  FAIL {rel}: {type(err).__name__}: {err}')
        return 1
    print(f'  OK   {rel}: {line} [{time.time() - start:.1f} s]')
    return 0


if __name__ == '__main__':
    sys.exit(main())
