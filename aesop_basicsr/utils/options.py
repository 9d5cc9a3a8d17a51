"""Checks on parsed BasicSR option dicts that must fail before anything heavy starts."""
from typing import Any, Iterator, List, Tuple

# Option files shipped in options/ mark every value a user must supply with this prefix,
# e.g. ``dataroot_gt: <REQUIRED: folder of DF2K HR sub-images>``.
PLACEHOLDER_PREFIX = '<REQUIRED'


def _walk(node: Any, prefix: str = '') -> Iterator[Tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f'{prefix}:{key}' if prefix else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{prefix}[{i}]')
    else:
        yield prefix, node


def find_placeholders(opt: dict) -> List[Tuple[str, str]]:
    """(key path, placeholder text) for every value still left as a ``<REQUIRED ...>`` placeholder."""
    return [(key, value) for key, value in _walk(opt)
            if isinstance(value, str) and value.strip().startswith(PLACEHOLDER_PREFIX)]


def check_no_placeholders(opt: dict, opt_file: str = '') -> None:
    """Raise with every key a user still has to set (keys written as in ``--force_yml``)."""
    found = find_placeholders(opt)
    if found:
        where = f' in {opt_file}' if opt_file else ''
        lines = '\n'.join(f'  {key}: {value}' for key, value in found)
        raise ValueError(f'Set these options{where} before running (or pass --force_yml KEY=VALUE):\n{lines}')
