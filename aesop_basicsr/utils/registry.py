"""Registration that survives re-imports.

BasicSR's ``Registry.register`` asserts that a name is new. A module of ours that is
imported twice (``importlib.reload``, or once as ``__main__`` and once by name) would
trip it, so we register through this helper: the same class (same module and qualified
name) replaces its earlier self, while a *different* object under a taken name is still
an error, exactly as in BasicSR.
"""
from typing import Callable, TypeVar

from basicsr.utils.registry import Registry

T = TypeVar('T')


def register(registry: Registry) -> Callable[[T], T]:
    """Decorator: ``@register(ARCH_REGISTRY)`` instead of ``@ARCH_REGISTRY.register()``."""

    def deco(obj: T) -> T:
        name = obj.__name__
        if name in registry:
            existing = registry.get(name)
            same = (getattr(existing, '__module__', None), getattr(existing, '__qualname__', None)) == (
                obj.__module__, obj.__qualname__)
            if not same:
                raise KeyError(f"An object named '{name}' is already registered in BasicSR's "
                               f"'{registry._name}' registry by {existing.__module__}.")
            registry._obj_map[name] = obj  # a re-import of our own module: keep the newest
            return obj
        registry.register(obj)
        return obj

    return deco
