import os

from setuptools import Command, find_packages, setup
from setuptools.command.build import build

AUTOLOAD_PTH = 'aesop_basicsr_autoload.pth'
# One line that site.py runs at every interpreter start (a .pth line starting with "import" is
# executed): it imports a small stdlib-only module and adds two import hooks (see
# aesop_basicsr_autoload.py). It never raises: a failing .pth line prints at every Python start.
AUTOLOAD_LINE = ("import os; exec('try:\\n import aesop_basicsr_autoload\\n aesop_basicsr_autoload.install()\\n"
                 "except Exception:\\n pass')\n")


class build_autoload_pth(Command):
    """Put ``aesop_basicsr_autoload.pth`` at the top of the wheel, i.e. of site-packages.

    A regular wheel (``pip install .``) is packed from ``build_lib``. An editable wheel
    (``pip install -e .``, PEP 660) maps the packages back to the checkout and is packed from
    the ``install`` command's ``install_lib`` instead, where setuptools also writes the other
    files that are not editable (scripts, data); the .pth goes there.
    """
    description = 'write aesop_basicsr_autoload.pth'
    user_options = []

    def initialize_options(self) -> None:
        self.build_lib = None
        self.editable_mode = False

    def finalize_options(self) -> None:
        self.set_undefined_options('build_py', ('build_lib', 'build_lib'))

    def run(self) -> None:
        folder = self.get_finalized_command('install').install_lib if self.editable_mode else self.build_lib
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, AUTOLOAD_PTH), 'w') as f:
            f.write(AUTOLOAD_LINE)

    def get_outputs(self) -> list:
        return [] if self.editable_mode else [os.path.join(self.build_lib, AUTOLOAD_PTH)]

    def get_source_files(self) -> list:
        return []


class build_with_autoload_pth(build):
    sub_commands = build.sub_commands + [('build_autoload_pth', None)]


def read_version() -> str:
    scope = {}
    with open('aesop_basicsr/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='aesop-basicsr',
    version=read_version(),
    description='AESOP (Auto-Encoded Supervision for Perceptual SR, CVPR 2025) as a plugin for BasicSR',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['aesop_basicsr', 'aesop_basicsr.*']),
    py_modules=['aesop_basicsr_autoload'],
    cmdclass={'build': build_with_autoload_pth, 'build_autoload_pth': build_autoload_pth},
    # Measured at both ends (README, "Install"): Python 3.10 + torch 2.1 in CI's smoke environment, Python 3.11 +
    # torch 2.14 in the main one. BasicSR is not a requirement (by distribution name): a fork such as
    # basicsr-fixed, an editable clone or a copy on PYTHONPATH provides the package `basicsr` under another name
    # or none, and pip would install PyPI's basicsr over it. The [basicsr] extra is for a fresh environment.
    python_requires='>=3.10',  # also spandrel's minimum
    install_requires=['torch>=2.1', 'numpy', 'opencv-python', 'pyyaml', 'safetensors', 'lpips', 'dists-pytorch',
                      'scikit-image', 'matplotlib', 'spandrel>=0.4.2', 'pillow'],
    extras_require={'basicsr': ['basicsr>=1.4.2'], 'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'aesop-train=aesop_basicsr.train:main',
            'aesop-test=aesop_basicsr.test:main',
            'aesop-demo=aesop_basicsr.demo.cli:main',
            'aesop-inspect=aesop_basicsr.inspect_loss:main',
            'aesop-prepare=aesop_basicsr.prepare:main',
            'aesop-eval=aesop_basicsr.evaluate:main',
            'aesop-convert=aesop_basicsr.convert:main',
            'aesop-check=aesop_basicsr.check:main',
        ],
    },
    license='Apache-2.0',
)
