"""Installing or uninstalling the plugin never replaces the BasicSR a user has: PyPI's, a fork, an editable clone.

setup.py does not require BasicSR by distribution name: pip cannot see that a fork (``basicsr-fixed``) or a
clone provides the package ``basicsr``, and would install PyPI's ``basicsr`` over it. Checked here:

- this environment's BasicSR (PyPI's basicsr 1.4.2 in the README's environment; in CI's smoke environment
  ``basicsr-fixed``, over which ``.ci/smoke`` installed the plugin as the README says): one distribution
  provides ``basicsr``, every one of its files still has the hash its RECORD lists, and where it is
  BasicSR's master (``basicsr-fixed``) its AdamW is there;
- where ``AESOP_INSTALL_TESTS=1`` (CI's smoke environment): the plugin's wheel installed with pip resolving
  its requirements offline (a requirement that only the registry could satisfy fails the install) into a
  throw-away venv layered on this environment, over this environment's BasicSR and over an editable clone
  of BasicSR's GitHub master (cloned with git from ``AESOP_TEST_BASICSR_REPO``, by default the project's
  fetched copy; skipped where there is none): BasicSR stays the one ``import basicsr`` finds, the hook
  registers AESOP, and after ``pip uninstall aesop-basicsr`` BasicSR is exactly as before the install.
"""
import base64
import hashlib
import inspect
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from os import path as osp

import basicsr
import pytest
import torch
from basicsr.models.base_model import BaseModel

from conftest import REPO_ROOT
from layered_venv import explain, layered_venv, must, pip, run

RUN_SWITCH = 'AESOP_INSTALL_TESTS'
BASICSR_REPO = os.environ.get('AESOP_TEST_BASICSR_REPO', '/work/.mirror/XPixelGroup+BasicSR/repo')


def probe(python: str, cwd: str) -> dict:
    """What a fresh interpreter of a venv has as BasicSR and whether AESOP is registered; or the error that ended it."""
    program = '\n'.join([
        'import json', 'from importlib import metadata', 'import torch', 'from basicsr.models.base_model import BaseModel',
        'from basicsr.utils.registry import LOSS_REGISTRY', inspect.getsource(has_adamw),
        inspect.getsource(basicsr_providers), inspect.getsource(describe), 'import basicsr',
        "print(json.dumps({'file': basicsr.__file__, 'providers': [describe(d) for d in basicsr_providers()], "
        "'AESOPLoss': 'AESOPLoss' in LOSS_REGISTRY, 'adamw': has_adamw()}))"])
    proc = run(['-c', program], cwd, python)
    if proc.returncode:
        return {'error': (proc.stderr.strip().splitlines() or [explain(proc)])[-1]}
    return json.loads(proc.stdout.splitlines()[-1])


def has_adamw() -> bool:
    """Whether this BasicSR's optimizer factory knows AdamW (BasicSR master does, 1.4.2 does not)."""
    try:
        BaseModel.get_optimizer(None, 'AdamW', [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    except NotImplementedError:
        return False
    return True


def basicsr_providers() -> list:
    """The installed distributions that provide the package ``basicsr``, in ``sys.path`` order."""
    return [d for d in metadata.distributions() if 'basicsr' in (d.read_text('top_level.txt') or '').split()]


def describe(dist) -> dict:
    url = json.loads(dist.read_text('direct_url.json') or '{}')
    return {'name': dist.metadata['Name'], 'site': str(dist.locate_file('')),
            'editable': url.get('dir_info', {}).get('editable', False)}


def changed_files(dist: metadata.Distribution) -> list:
    """Files of ``dist`` whose content differs from the sha256 its RECORD lists (missing ones included)."""
    changed = []
    for file in dist.files or []:
        if file.hash is None or file.hash.mode != 'sha256':
            continue
        path = file.locate()
        if not osp.isfile(path):
            changed.append(str(file))
            continue
        with open(path, 'rb') as f:
            digest = base64.urlsafe_b64encode(hashlib.sha256(f.read()).digest()).rstrip(b'=').decode()
        if digest != file.hash.value:
            changed.append(str(file))
    return changed


def install_then_uninstall(python: str, wheel: str, cwd: str) -> dict:
    """Probe; install the plugin's wheel (requirements resolved offline), probe; uninstall it, probe again."""
    before = probe(python, cwd)
    installed = pip(python, 'install', '--no-build-isolation', wheel, cwd=cwd)
    if installed.returncode:
        return {'install_error': explain(installed)}
    with_plugin = probe(python, cwd)
    must(pip(python, 'uninstall', '-y', 'aesop-basicsr', cwd=cwd))
    return {'before': before, 'with_plugin': with_plugin, 'after_uninstall': probe(python, cwd)}


def over_this_environment(work: str, wheel: str) -> dict:
    python, site = layered_venv(osp.join(work, 'venv'))
    return dict(install_then_uninstall(python, wheel, work), site=site)


def over_an_editable_clone(work: str, wheel: str) -> dict:
    clone = osp.join(work, 'BasicSR')
    subprocess.run(['git', 'clone', '-q', '--depth', '1', f'file://{BASICSR_REPO}', clone], check=True,
                   capture_output=True)
    python, site = layered_venv(osp.join(work, 'venv'))
    # compat mode: the clone's folder on sys.path (a .pth line), ahead of this environment's BasicSR in the layered
    # venv; the default mode's import finder would only be asked after every sys.path entry, and find this one's
    must(pip(python, 'install', '-q', '--no-deps', '--no-build-isolation', '--config-settings', 'editable_mode=compat',
             '-e', clone, cwd=work))
    return dict(install_then_uninstall(python, wheel, work), site=site, clone=clone)


@pytest.fixture(scope='module')
def installs(tmp_path_factory, request) -> dict:
    if os.environ.get(RUN_SWITCH) != '1':
        pytest.skip(f'the install tests run in CI\'s smoke environment, where .ci/smoke sets {RUN_SWITCH}=1 (about '
                    '45 s of CPU: pip and fresh interpreters in two throw-away venvs)')
    plugin_wheel = request.getfixturevalue('plugin_wheel')
    work = tmp_path_factory.mktemp('installs')
    jobs = {'environment': lambda: over_this_environment(str(work / 'environment'), plugin_wheel)}
    if osp.isdir(BASICSR_REPO):
        jobs['clone'] = lambda: over_an_editable_clone(str(work / 'clone'), plugin_wheel)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_this_environments_basicsr_distribution_is_intact():
    (provider, ) = basicsr_providers()  # PyPI's basicsr installed over a fork would make two
    assert changed_files(provider) == []
    assert osp.dirname(osp.dirname(basicsr.__file__)) == str(provider.locate_file(''))
    if provider.metadata['Name'] == 'basicsr-fixed':  # BasicSR's master: its AdamW is there
        assert has_adamw()


def test_installing_and_uninstalling_the_plugin_over_this_environments_basicsr(installs):
    result = installs['environment']
    assert 'install_error' not in result, result.get('install_error')
    (provider, ) = basicsr_providers()
    seen = result['with_plugin']
    assert seen['file'] == basicsr.__file__  # no other BasicSR was installed into the venv
    assert [p['name'] for p in seen['providers']] == [provider.metadata['Name']]
    assert seen['adamw'] == has_adamw() and seen['AESOPLoss']
    # uninstalled, BasicSR is exactly as it was before: BasicSR 1.4.2 with torchvision >= 0.17 fails on its own
    # import of torchvision.transforms.functional_tensor again (the plugin's hook answered it)
    assert result['after_uninstall'] == result['before']
    assert result['before'].get('AESOPLoss') is not True
    assert not osp.exists(osp.join(result['site'], 'aesop_basicsr_autoload.pth'))


def test_installing_and_uninstalling_the_plugin_over_an_editable_basicsr_clone(installs):
    if 'clone' not in installs:
        pytest.skip(f'no BasicSR git repository at {BASICSR_REPO} to clone (AESOP_TEST_BASICSR_REPO names one)')
    result = installs['clone']
    assert 'install_error' not in result, result.get('install_error')
    for step in ('before', 'with_plugin', 'after_uninstall'):
        seen = result[step]
        assert seen['file'] == osp.join(result['clone'], 'basicsr', '__init__.py'), (step, seen)
        first = seen['providers'][0]  # the venv's own, before this environment's
        assert (first['name'], first['site'], first['editable']) == ('basicsr', result['site'], True), step
        assert seen['adamw'], step  # BasicSR master's optimizer factory
    assert result['with_plugin']['AESOPLoss'] and not result['after_uninstall']['AESOPLoss']
    assert result['after_uninstall'] == result['before']


def test_without_any_basicsr_the_import_names_how_to_install_one(tmp_path):
    """``python -S``: no site-packages, so no ``basicsr`` (nor torch); the checkout itself on sys.path."""
    proc = subprocess.run([sys.executable, '-S', '-c', f'import sys; sys.path.insert(0, {REPO_ROOT!r}); '
                           'import aesop_basicsr'], cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: aesop-basicsr needs BasicSR, and no 'basicsr' package is importable")
    for command in ("pip install --no-build-isolation 'aesop-basicsr[basicsr]'", 'pip install basicsr-fixed',
                    'pip install -e /path/to/your/BasicSR-clone', 'PYTHONPATH'):
        assert command in last, command
