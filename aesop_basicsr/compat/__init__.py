"""Compatibility with option files written for other code bases.

- :mod:`~aesop_basicsr.compat.authors_fork`: the authors' BasicSR fork (2minkyulee/AESOP-SR), whose option
  files then run on stock BasicSR unchanged except for paths.
"""
from aesop_basicsr.compat import authors_fork  # noqa: F401  (registers the fork's names as fallbacks)
