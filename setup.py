from setuptools import find_packages, setup


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
    python_requires='>=3.8',
    install_requires=['basicsr>=1.4.2', 'torch', 'numpy', 'opencv-python', 'pyyaml', 'safetensors', 'lpips', 'dists-pytorch',
                      'scikit-image', 'matplotlib'],
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'aesop-train=aesop_basicsr.train:main',
            'aesop-test=aesop_basicsr.test:main',
            'aesop-demo=aesop_basicsr.demo.cli:main',
            'aesop-inspect=aesop_basicsr.inspect_loss:main',
            'aesop-prepare=aesop_basicsr.prepare:main',
            'aesop-eval=aesop_basicsr.evaluate:main',
        ],
    },
    license='Apache-2.0',
)
