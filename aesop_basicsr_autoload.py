"""AESOP in every Python process that imports BasicSR, with no code change.

``aesop_basicsr_autoload.pth`` (installed at the top of site-packages) calls :func:`install` at
every interpreter start. It adds two import hooks and imports nothing; the standard library's
``sys`` and ``os`` (loaded already by then) are all this module uses at start-up:

* :class:`TorchvisionAlias`: BasicSR 1.4.2's degradations import
  ``torchvision.transforms.functional_tensor``, which torchvision renamed to ``_functional_tensor``
  (0.15) and then removed under its old name (0.17). The hook answers that one name, and only when
  no other finder does, with the renamed module.
* :class:`RegisterAfterBasicSR`: right after ``import basicsr`` finishes, it runs
  ``import aesop_basicsr``, which registers AESOP into BasicSR's registries. This happens before any
  option file is parsed, so ``pixel_opt: {type: AESOPLoss}`` works with BasicSR's, Real-ESRGAN's and
  any BasicSR-based project's unmodified ``train.py``.
  ``import aesop_basicsr`` also makes BasicSR read option files with a YAML loader that builds no
  Python objects (``aesop_basicsr.utils.safe_yaml``).

``AESOP_BASICSR_AUTOLOAD=0`` in the environment turns the second hook off (the alias stays; it only
answers an import that fails otherwise). ``import aesop_basicsr`` always registers AESOP.

Why not wrapt's ``register_post_import_hook``? Importing wrapt 2.x imports asyncio, inspect and
importlib.metadata, which takes longer than the interpreter's own start, in every process of the
environment. This module takes well under a millisecond.
"""
import os
import sys

ENV_VAR = 'AESOP_BASICSR_AUTOLOAD'
LEGACY_NAME = 'torchvision.transforms.functional_tensor'
RENAMED = 'torchvision.transforms._functional_tensor'


def autoload_enabled() -> bool:
    """False when ``AESOP_BASICSR_AUTOLOAD`` is ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get(ENV_VAR, '1').strip().lower() not in ('0', 'false', 'no', 'off')


class TorchvisionAlias:
    """Meta path finder and loader: ``LEGACY_NAME`` is ``RENAMED``, the same module object.

    It sits last in ``sys.meta_path``, so an installed torchvision that still ships the legacy
    module imports it as before.
    """

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != LEGACY_NAME:
            return None
        from importlib.util import find_spec, spec_from_loader
        if find_spec(RENAMED) is None:
            return None
        return spec_from_loader(fullname, cls)

    @staticmethod
    def create_module(spec):
        import importlib
        module = importlib.import_module(RENAMED)
        spec.loader_state = module.__spec__
        return module

    @staticmethod
    def exec_module(module):
        # the import system stamped the alias's spec on the module: give it back its own
        module.__spec__ = module.__spec__.loader_state


class RegisterAfterBasicSR:
    """Meta path finder (first in ``sys.meta_path``): ``basicsr`` loads as usual, then AESOP registers.

    It finds ``basicsr`` through the other finders and wraps only the found loader's
    ``exec_module``; once ``basicsr`` has loaded, it leaves ``sys.meta_path`` and imports
    ``aesop_basicsr`` (whose own ``import basicsr`` then finds it in ``sys.modules``).
    """

    def __init__(self) -> None:
        self._searching = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr' or self._searching:
            return None
        from importlib.util import find_spec
        self._searching = True
        try:
            spec = find_spec(fullname)
        finally:
            self._searching = False
        if spec is None or not hasattr(spec.loader, 'exec_module'):
            return None
        spec.loader = _ThenRegister(spec.loader, self)
        return spec


class _ThenRegister:
    """Loader wrapper: the real loader executes ``basicsr``, then :func:`register_aesop` runs."""

    def __init__(self, loader, hook: RegisterAfterBasicSR) -> None:
        self.loader = loader
        self.hook = hook

    def create_module(self, spec):
        create = getattr(self.loader, 'create_module', None)
        return create(spec) if create is not None else None

    def exec_module(self, module) -> None:
        # BasicSR sees its real loader, exactly as without this hook
        if getattr(module, '__loader__', None) is self:
            module.__loader__ = self.loader
        if getattr(module.__spec__, 'loader', None) is self:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)  # a failing import of basicsr keeps the hook for a retry
        if self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)
        register_aesop()


def register_aesop() -> None:
    """``import aesop_basicsr``; a failure warns instead of breaking ``import basicsr``."""
    try:
        import aesop_basicsr  # noqa: F401  (a no-op while aesop_basicsr itself is importing basicsr)
    except Exception as exc:  # noqa: BLE001  (BasicSR must stay importable for everything else)
        import warnings
        warnings.warn(f'aesop-basicsr could not register AESOP into BasicSR ({type(exc).__name__}: {exc}). '
                      f"Option files naming AESOPLoss will fail; 'import aesop_basicsr' shows the full error, "
                      f'{ENV_VAR}=0 turns this hook off.', RuntimeWarning, stacklevel=2)


def install_torchvision_alias() -> None:
    """Add :class:`TorchvisionAlias` at the end of ``sys.meta_path`` (once)."""
    if TorchvisionAlias not in sys.meta_path:
        sys.meta_path.append(TorchvisionAlias)


def install() -> None:
    """Both hooks; run by ``aesop_basicsr_autoload.pth`` at interpreter start. Idempotent."""
    install_torchvision_alias()
    if not autoload_enabled() or 'basicsr' in sys.modules:
        return
    if not any(isinstance(finder, RegisterAfterBasicSR) for finder in sys.meta_path):
        sys.meta_path.insert(0, RegisterAfterBasicSR())
