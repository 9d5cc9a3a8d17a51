"""Option files are data: a YAML loader that builds no Python objects, for our commands and for BasicSR's.

BasicSR 1.4.2 reads option files with ``yaml.load(f, Loader=ordered_yaml()[0])``, where the loader is
PyYAML's full ``Loader``: a tag such as ``!!python/object/apply:os.system ["..."]`` in a downloaded
option file runs a command while the file is read. :class:`OptionLoader` is PyYAML's safe loader
(plain YAML: mappings, lists, strings, numbers, booleans, null, ``!!float`` and the other standard
tags) that still returns mappings as ``OrderedDict``, as BasicSR expects, and refuses every other tag
with an error naming it and its line.

:func:`harden_basicsr_option_loading` makes BasicSR's ``basicsr.utils.options.ordered_yaml`` return
this loader. ``import aesop_basicsr`` calls it, so every process where the installed hook registers
AESOP (``python -m basicsr.train``, ``basicsr/train.py``, ``realesrgan/train.py``, a project's
``train.py``) reads option files safely; ``AESOP_BASICSR_AUTOLOAD=0`` leaves BasicSR as it is
(unless the process imports ``aesop_basicsr`` itself).

Reading an option file is also the one moment where the plugin sees a stock model's whole option
dict under BasicSR's own ``train.py``, so :class:`CheckedOptionLoader` (what BasicSR gets) checks
there what would otherwise train silently wrong: each AESOPLoss auto-encoder's scale against ``scale``.
"""
import functools
from collections import OrderedDict
from typing import Any, Callable, Tuple

import yaml
from yaml.constructor import ConstructorError

try:  # the C parser when PyYAML has it, as BasicSR uses
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _SafeLoader

STANDARD_TAG_PREFIX = 'tag:yaml.org,2002:'


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:python/object/apply:os.system`` as written in a file: ``!!python/object/apply:os.system``."""
    return '!!' + tag[len(STANDARD_TAG_PREFIX):] if tag.startswith(STANDARD_TAG_PREFIX) else tag


class CodeTagError(ConstructorError):
    """A tag that would build a Python object (and so could run code) while the option file is read."""

    def __init__(self, node: yaml.Node) -> None:
        self.tag = short_tag(node.tag)
        super().__init__(None, None, f'the tag {self.tag} would build a Python object (it could run code); option '
                         'files may hold plain YAML only', node.start_mark)


class OptionLoader(_SafeLoader):
    """PyYAML's safe loader; mappings become ``OrderedDict`` (BasicSR's ``ordered_yaml`` convention)."""

    def construct_undefined(self, node: yaml.Node) -> Any:
        raise CodeTagError(node)


def _ordered_mapping(loader: OptionLoader, node: yaml.MappingNode) -> 'OrderedDict[Any, Any]':
    loader.flatten_mapping(node)  # YAML merge keys (<<), as SafeConstructor's own mapping constructor does
    return OrderedDict(loader.construct_pairs(node))


OptionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _ordered_mapping)
OptionLoader.add_constructor(None, OptionLoader.construct_undefined)


class CheckedOptionLoader(OptionLoader):
    """:class:`OptionLoader` that checks a loaded option dict for what trains silently wrong (BasicSR's loader)."""

    def __init__(self, stream: Any) -> None:
        self.option_file = getattr(stream, 'name', '')  # for messages
        super().__init__(stream)

    def get_single_data(self) -> Any:
        data = super().get_single_data()
        if isinstance(data, dict):
            from aesop_basicsr.utils.options import check_autoencoder_scales
            check_autoencoder_scales(data, self.option_file)
        return data


def load_options(stream: Any) -> Any:
    """An option file's text or stream as Python data, building no Python objects (see :class:`OptionLoader`)."""
    return yaml.load(stream, Loader=OptionLoader)


def _safe_ordered_yaml(original: Callable[[], Tuple[type, type]]) -> Callable[[], Tuple[type, type]]:

    @functools.wraps(original)
    def ordered_yaml() -> Tuple[type, type]:
        """BasicSR's ``ordered_yaml``, with a loader that builds no Python objects (aesop_basicsr.utils.safe_yaml)."""
        dumper = original()[1]  # BasicSR's Dumper, with its OrderedDict representer
        return CheckedOptionLoader, dumper

    ordered_yaml.aesop_safe = True
    return ordered_yaml


def harden_basicsr_option_loading() -> None:
    """Make BasicSR's option parsing (``parse_options`` -> ``ordered_yaml()``) read files with the safe loader.

    Idempotent. ``parse_options`` looks ``ordered_yaml`` up in its module at every call, so this covers
    BasicSR's train.py and test.py and every script built on them, wherever they were imported from.
    """
    import basicsr.utils.options as basicsr_options
    if not getattr(basicsr_options.ordered_yaml, 'aesop_safe', False):
        basicsr_options.ordered_yaml = _safe_ordered_yaml(basicsr_options.ordered_yaml)
