"""``aesop-demo``: the whole AESOP method on a CPU in minutes (see :mod:`aesop_basicsr.demo.cli`).

- :mod:`~aesop_basicsr.demo.options`: the BasicSR option files of the demo's four training stages;
- :mod:`~aesop_basicsr.demo.report`: evaluation of the trained networks, metric table and panels;
- :mod:`~aesop_basicsr.demo.cli`: the command that builds the data, runs the stages and writes the report.
"""
from aesop_basicsr.demo.cli import (MARKER, QUICK, VAL_HR_SIZE, VAL_PHOTOS, VGG19_FILE, DemoError, choose_report_dir,
                                    expose_vgg19, find_vgg19, main, parse_args, run_demo, run_training,
                                    settings_from_args)

__all__ = ['MARKER', 'QUICK', 'VAL_HR_SIZE', 'VAL_PHOTOS', 'VGG19_FILE', 'DemoError', 'choose_report_dir',
           'expose_vgg19', 'find_vgg19', 'main', 'parse_args', 'run_demo', 'run_training', 'settings_from_args']
