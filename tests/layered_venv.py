"""Throw-away virtual environments for install tests, and the plugin's wheel built from this checkout.

A layered venv reuses this environment's packages (torch, BasicSR, ...) through a path-only ``.pth``
file: pip and the interpreter there see them as installed, nothing is downloaded, and the other ``.pth``
files of this environment (its editable install, its autoload hook) do not run there. Packages installed
into the venv itself come first on its ``sys.path``.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
from os import path as osp
from typing import List, Tuple

from conftest import REPO_ROOT

PLUGIN_SOURCES = ('setup.py', 'README.md', 'aesop_basicsr_autoload.py')


def quiet_env(**extra: str) -> dict:
    """This environment without PYTHONPATH and without the autoload switch, one thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'AESOP_BASICSR_AUTOLOAD')}
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **extra)
    return env


def run(args: List[str], cwd: str, python: str = sys.executable, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], cwd=cwd, env=quiet_env(**env), capture_output=True, text=True,
                          timeout=900)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f'exit {proc.returncode}: {proc.args}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'


def must(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, explain(proc)
    return proc


def build_plugin_wheel(work: str) -> str:
    """``pip wheel`` of a copy of this checkout's sources (offline, no build isolation); the wheel's path."""
    src = osp.join(work, 'src')
    os.makedirs(src)
    for name in PLUGIN_SOURCES:
        shutil.copy(osp.join(REPO_ROOT, name), src)
    shutil.copytree(osp.join(REPO_ROOT, 'aesop_basicsr'), osp.join(src, 'aesop_basicsr'),
                    ignore=shutil.ignore_patterns('__pycache__'))
    dist = osp.join(work, 'dist')
    must(run(['-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '--no-index', '-w', dist, src], work))
    return glob.glob(osp.join(dist, '*.whl'))[0]


def layered_venv(folder: str) -> Tuple[str, str]:
    """A venv without pip whose ``sys.path`` ends with this environment's site-packages; (python, site-packages)."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', folder], check=True, env=quiet_env())
    python = osp.join(folder, 'bin', 'python')
    site = must(run(['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], folder, python)).stdout.strip()
    with open(osp.join(site, '_reuse_test_environment.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    return python, site


def pip(python: str, *args: str, cwd: str) -> subprocess.CompletedProcess:
    """This environment's pip acting on the venv of ``python`` (``pip --python``), offline."""
    return run(['-m', 'pip', '--python', python, *args], cwd, PIP_NO_INDEX='1')
