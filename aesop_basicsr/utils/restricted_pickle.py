"""A pickle module for ``torch.load`` that refuses every global outside an explicit allowlist.

torch < 2.4 has ``weights_only=True`` but no way to extend its allowlist (``add_safe_globals``
came in 2.4, ``safe_globals`` in 2.5), and BasicSR's training states hold a ``collections.Counter``
(``MultiStepRestartLR``'s milestones), which that loader rejects. There, training states load with
``torch.load(path, weights_only=False, pickle_module=restricted_pickle_module(types))``: the
"Restricting Globals" pattern of Python's ``pickle`` documentation
(https://docs.python.org/3/library/pickle.html#restricting-globals). ``torch.load`` subclasses the
module's ``Unpickler``, resolves storage types itself and sends every other global through
:meth:`RestrictedUnpickler.find_class`, which allows only

- the functions that rebuild tensors and parameters (``torch._utils._rebuild_*``), ``torch.Size``
  and the ``torch`` dtypes (what torch's own ``weights_only`` loader allows for plain tensors), and
- ``collections.OrderedDict`` plus the types the caller names.

Anything else (``builtins.open``, ``os.system``, a class of some module ...) raises
``pickle.UnpicklingError('Unsupported global: GLOBAL module.name')`` before it is looked up, so no code
named by the file runs.
"""
import collections
import pickle
import types
from typing import IO, Any, Dict, Sequence

import torch
import torch._utils

# torch._utils functions that rebuild a (plain) tensor or parameter from its storage; the later ones
# exist in later torch versions only.
TENSOR_REBUILD_FUNCTIONS = ('_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3', '_rebuild_parameter',
                            '_rebuild_parameter_with_state')


def _qualified_name(obj: Any) -> str:
    return f'{obj.__module__}.{obj.__qualname__}'


def tensor_globals() -> Dict[str, Any]:
    """``module.name -> object`` for what plain tensors, parameters and dtypes need when unpickled."""
    allowed: Dict[str, Any] = {f'torch._utils.{name}': getattr(torch._utils, name)
                               for name in TENSOR_REBUILD_FUNCTIONS if hasattr(torch._utils, name)}
    allowed['torch.Size'] = torch.Size
    allowed.update((f'torch.{name}', value) for name, value in vars(torch).items() if isinstance(value, torch.dtype))
    allowed[_qualified_name(collections.OrderedDict)] = collections.OrderedDict
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come from :attr:`allowed` only (``module.name -> object``)."""

    allowed: Dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get(f'{module}.{name}')
        if found is None:
            raise pickle.UnpicklingError(f'Unsupported global: GLOBAL {module}.{name}')
        return found


def restricted_pickle_module(extra_types: Sequence[type] = ()) -> types.ModuleType:
    """A module with ``Unpickler`` and ``load``, as ``torch.load(pickle_module=...)`` uses them.

    It allows :func:`tensor_globals` and ``extra_types`` (classes, by their ``module.qualname``).
    ``load`` (which torch calls for the header of a legacy, non-zip file) is restricted too.
    """
    allowed = dict(tensor_globals())
    allowed.update((_qualified_name(t), t) for t in extra_types)
    unpickler = type('Unpickler', (RestrictedUnpickler, ), {'allowed': allowed, '__module__': __name__})

    def load(file: IO[bytes], **kwargs: Any) -> Any:
        return unpickler(file, **kwargs).load()

    module = types.ModuleType(f'{__name__}.allowing')
    module.Unpickler = unpickler
    module.load = load
    module.UnpicklingError = pickle.UnpicklingError
    return module

