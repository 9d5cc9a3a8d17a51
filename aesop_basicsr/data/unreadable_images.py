"""An image that fails to decode during training (e.g. truncated after the data check): named, then stop or skip.

BasicSR's datasets decode each image when a sample is drawn; a file that fails (empty, truncated,
damaged) ends the run hours in with ``cv2.error ... !buf.empty()`` or ``'NoneType' object has no
attribute 'astype'`` and no file named. :class:`NamedDecodeFailures` wraps a BasicSR dataset: when
drawing a sample fails, it decodes the sample's files again (as BasicSR does) to find the one at fault
and, by the dataset option ``on_unreadable_image``:

- ``stop`` (default): raises :class:`UnreadableImageError`, one line naming the dataset key and the
  file (``aesop-train`` exits with status 2). Checkpoints are written before validation and never
  half-written, so the newest saved state is intact: fix the file and ``--auto_resume``.
- ``skip``: logs a warning naming them (once per file) and returns the next sample that decodes.

A failure that no file of the sample explains (a bug, a wrong size) is re-raised unchanged.
"""
from typing import Any, List, Optional, Set, Tuple

from basicsr.utils import get_root_logger
from torch.utils.data import Dataset

from aesop_basicsr.data.image_header import UnreadableImage, decode_as_basicsr
from aesop_basicsr.utils.cli import DataError
from aesop_basicsr.utils.options import UNREADABLE_IMAGE_ACTIONS as ACTIONS
from aesop_basicsr.utils.options import UNREADABLE_IMAGE_KEY as OPTION_KEY


class UnreadableImageError(DataError):
    """An image that cannot be decoded during training; ``str()`` is one line.

    Raised in a DataLoader worker, it reaches the main process re-created from the worker's traceback
    text (``Caught UnreadableImageError in DataLoader worker process 0. Original Traceback ...``):
    the message is taken back out of that text.
    """

    def __init__(self, message: str) -> None:
        marker = f'{type(self).__name__}: '
        if 'Original Traceback' in message and marker in message:
            message = message.rstrip().splitlines()[-1].split(marker, 1)[-1]
        super().__init__(message)


def sample_files(dataset: Any, index: int) -> List[Tuple[str, str]]:
    """(role, path or lmdb key) of each image a BasicSR dataset reads for sample ``index``."""
    entry = dataset.paths[index]
    if isinstance(entry, dict):  # paired: {'lq_path': ..., 'gt_path': ...}
        return [(key[:-len('_path')], value) for key, value in entry.items() if key.endswith('_path')]
    role = 'gt' if dataset.opt.get('dataroot_gt') and not dataset.opt.get('dataroot_lq') else 'lq'
    return [(role, entry)]


def read_bytes(dataset: Any, role: str, path: str) -> bytes:
    """The bytes BasicSR's file client gives for ``path`` (lmdb keys too)."""
    client = getattr(dataset, 'file_client', None)
    if client is not None:
        return client.get(path, role)
    with open(path, 'rb') as f:
        return f.read()


def first_unreadable(dataset: Any, index: int) -> Optional[Tuple[str, str]]:
    """(path, reason) of the first file of sample ``index`` that BasicSR cannot decode, or None."""
    try:
        files = sample_files(dataset, index)
    except (AttributeError, IndexError, KeyError, TypeError):  # not a dataset with BasicSR's ``paths``
        return None
    for role, path in files:
        try:
            decode_as_basicsr(read_bytes(dataset, role, path))
        except UnreadableImage as err:
            return path, str(err)
        except (OSError, TypeError) as err:  # a file client error: missing file, unknown lmdb key
            return path, f'cannot be read: {err}'
    return None


class NamedDecodeFailures(Dataset):
    """A BasicSR dataset whose samples that fail to decode are named and stop the run, or are skipped.

    Args:
        dataset: A BasicSR dataset (``paths``, ``opt``, ``file_client`` as BasicSR's image datasets have).
        key: Its option key for messages, e.g. ``datasets:train``.
        action: ``stop`` or ``skip`` (see the module doc).

    Attributes of the wrapped dataset (``opt``, ``paths``, ...) are reachable through this one.
    """

    def __init__(self, dataset: Dataset, key: str, action: str = 'stop') -> None:
        if action not in ACTIONS:
            raise ValueError(f'{key}:{OPTION_KEY} is {action!r}; choose one of {", ".join(ACTIONS)}.')
        self.dataset, self.key, self.action = dataset, key, action
        self._warned: Set[str] = set()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__') or name in ('dataset', 'key', 'action', '_warned'):  # unpickling in a worker
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> Any:
        for _ in range(len(self.dataset)):
            try:
                return self.dataset[index]
            except Exception:  # noqa: B902  (sorted out below: a decode failure, or re-raised as it was)
                found = first_unreadable(self.dataset, index)
                if found is None:
                    raise
            path, reason = found
            if self.action == 'stop':
                raise UnreadableImageError(
                    f'{self.key}: {path!r} cannot be decoded ({reason}); stopped. Replace or remove the file (a '
                    f'training run resumes from its last saved state with --auto_resume), or set '
                    f'{self.key}:{OPTION_KEY}: skip to skip such images with a warning.') from None
            if path not in self._warned:
                self._warned.add(path)
                get_root_logger().warning(f'{self.key}: {path!r} cannot be decoded ({reason}); skipped '
                                          f'({OPTION_KEY}: skip), the next sample is used instead.')
            index = (index + 1) % len(self.dataset)
        raise UnreadableImageError(f'{self.key}: none of its {len(self.dataset)} samples can be decoded '
                                   f'(the first: see the warnings above); check the dataset folders.')
