"""``aesop-test -opt X.yml`` / ``python -m aesop_basicsr.test``: BasicSR's test.py with AESOP registered.

Results go to ``results/<name>/`` under the current directory.
"""
import os
from typing import Optional

import aesop_basicsr  # noqa: F401  (registers AESOP into BasicSR; must precede basicsr)
import basicsr.test

from aesop_basicsr.train import use_aesop_hooks
from aesop_basicsr.utils.cli import command


@command('aesop-test', keep_debug_flag=True)
def main(root_path: Optional[str] = None) -> None:
    use_aesop_hooks()
    basicsr.test.test_pipeline(root_path or os.getcwd())


if __name__ == '__main__':
    main()
