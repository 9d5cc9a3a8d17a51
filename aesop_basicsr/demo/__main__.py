"""``python -m aesop_basicsr.demo``: the same as the ``aesop-demo`` command."""
from aesop_basicsr.demo.cli import main

if __name__ == '__main__':
    main()
