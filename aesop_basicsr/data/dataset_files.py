"""The image files a BasicSR dataset option dict names, resolved the way its dataset class resolves them.

Where BasicSR's own functions (``basicsr.data.data_util.paired_paths_from_folder`` and
``paired_paths_from_meta_info_file``, ``paired_paths_from_lmdb``, the dataset classes' constructors)
stop at the first problem with an ``AssertionError`` or a crash later in training, this module
collects every entry that does not resolve: a GT image whose LQ image the ``filename_tmpl`` does not
name, extra LQ images, ``meta_info`` lines naming no file, lmdb keys in one database only.

Datasets covered (BasicSR's and Real-ESRGAN's; the ``_basicsr`` copies too), for the ``disk`` and
``lmdb`` io backends:

============================  ========  =====================================================
type                          images    listed by
============================  ========  =====================================================
``PairedImageDataset``        GT + LQ   ``meta_info_file`` (+ ``filename_tmpl``), else the folders
``RealESRGANPairedDataset``   GT + LQ   ``meta_info`` (``gt, lq`` per line), else the folders
``SingleImageDataset``        LQ        ``meta_info_file``, else the folder
``RealESRGANDataset``         GT        ``meta_info`` (``~``: the folder, as :mod:`aesop_basicsr.compat` reads it)
============================  ========  =====================================================

lmdb: the keys of ``<dataroot>/meta_info.txt`` (the same in both databases of a pair).
"""
from dataclasses import dataclass, field
from os import path as osp
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from basicsr.utils import scandir

from aesop_basicsr.data.image_header import ImageSize, UnreadableImage, read_header

PAIRED_TYPES = {'PairedImageDataset': 'meta_info_file', 'RealESRGANPairedDataset': 'meta_info'}
LQ_TYPES = {'SingleImageDataset': 'meta_info_file'}
GT_TYPES = {'RealESRGANDataset': 'meta_info'}
BASICSR_COPY_SUFFIX = '_basicsr'
LMDB_META_INFO = 'meta_info.txt'
T = TypeVar('T')


@dataclass
class Problem:
    """One kind of problem in one dataset: every entry (file, line, key) that has it."""
    key: str  # the option key at fault, e.g. datasets:train:dataroot_gt
    total: str  # what the entries are counted among, e.g. '4 GT images'; '' for no count
    what: str  # what is wrong with them, e.g. 'cannot be read'
    items: List[str] = field(default_factory=list)

    def line(self, named: int, opt_file: str = '') -> str:
        """``key (in opt_file): n of total what: first, second, third, and N more.``"""
        shown = ': ' + ', '.join(self.items[:named]) if self.items else ''
        more = f', and {len(self.items) - named} more' if len(self.items) > named else ''
        count = f'{len(self.items)} of {self.total} ' if self.total else ''
        where = f' (in {opt_file})' if opt_file else ''
        return f'{self.key}{where}: {count}{self.what}{shown}{more}.'


class DiskImages:
    """Images that are files; an image's key is its path."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def name(self, key: str) -> str:
        return repr(key)

    def header(self, key: str) -> ImageSize:
        return read_header(key)

    def content(self, key: str) -> bytes:
        with open(key, 'rb') as f:
            return f.read()

    def close(self) -> None:
        pass


class LmdbImages:
    """Images in an lmdb database as BasicSR writes them (``basicsr.utils.lmdb_util``); a key without extension."""

    def __init__(self, folder: str) -> None:
        import lmdb
        self.folder = folder
        self.env = lmdb.open(folder, readonly=True, lock=False, readahead=False, meminit=False)

    def name(self, key: str) -> str:
        return f'{self.folder!r}[{key!r}]'

    def _read(self, key: str, use: Callable[[memoryview], T]) -> T:
        with self.env.begin(buffers=True) as txn:
            value = txn.get(key.encode('ascii'))
            if value is None:
                raise UnreadableImage('not in the database')
            return use(value)

    def header(self, key: str) -> ImageSize:
        return self._read(key, read_header)

    def content(self, key: str) -> bytes:
        return self._read(key, bytes)

    def close(self) -> None:
        self.env.close()


@dataclass
class DatasetFiles:
    """What a dataset reads: its samples (GT and/or LQ keys), where they are, and what did not resolve."""
    roles: Dict[str, object]  # 'gt' / 'lq' -> DiskImages or LmdbImages
    samples: List[Dict[str, str]]  # each {'gt': key, 'lq': key} (the roles the dataset has)
    problems: List[Problem]

    def close(self) -> None:
        for images in self.roles.values():
            images.close()


def base_type(dataset_type: object) -> str:
    """The dataset type without BasicSR's ``_basicsr`` suffix for its copies of Real-ESRGAN's classes."""
    name = str(dataset_type)
    return name[:-len(BASICSR_COPY_SUFFIX)] if name.endswith(BASICSR_COPY_SUFFIX) else name


def dataset_roles(dataset_type: object) -> Optional[Tuple[str, ...]]:
    """``('gt', 'lq')``, ``('lq',)`` or ``('gt',)`` for the covered types; None for others (not checked)."""
    name = base_type(dataset_type)
    if name in PAIRED_TYPES:
        return ('gt', 'lq')
    if name in LQ_TYPES:
        return ('lq', )
    if name in GT_TYPES:
        return ('gt', )
    return None


def _folder(dataset: Mapping, role: str) -> str:
    return osp.expanduser(str(dataset.get(f'dataroot_{role}')))


def _read_lines(path: str) -> List[str]:
    with open(osp.expanduser(path)) as f:
        return [line.rstrip('\n') for line in f]


def _lq_name(tmpl: str, gt_name: str) -> str:
    base, ext = osp.splitext(osp.basename(gt_name))
    return f'{tmpl.format(base)}{ext}'


def _lmdb_keys(prefix: str, folder: str, role: str, problems: List[Problem]) -> Optional[List[str]]:
    if not folder.endswith('.lmdb'):
        problems.append(Problem(f'{prefix}:dataroot_{role}', '', 'io_backend lmdb needs a folder ending in .lmdb',
                                [repr(folder)]))
        return None
    meta = osp.join(folder, LMDB_META_INFO)
    if not osp.isfile(meta):
        problems.append(Problem(f'{prefix}:dataroot_{role}', '', f'an lmdb folder without {LMDB_META_INFO}',
                                [repr(folder)]))
        return None
    return [line.split('.')[0] for line in _read_lines(meta)]


def _paired_lmdb(prefix: str, dataset: Mapping, problems: List[Problem]) -> List[Dict[str, str]]:
    keys = {role: _lmdb_keys(prefix, _folder(dataset, role), role, problems) for role in ('gt', 'lq')}
    if keys['gt'] is None or keys['lq'] is None:
        return []
    for role, other in (('gt', 'lq'), ('lq', 'gt')):
        only = sorted(set(keys[role]) - set(keys[other]))
        if only:
            problems.append(Problem(f'{prefix}:dataroot_{role}', f'{len(keys[role])} keys',
                                    f'not in the {other.upper()} database (BasicSR needs the same keys in both)',
                                    [repr(k) for k in only]))
    common = set(keys['lq'])
    return [{'gt': key, 'lq': key} for key in keys['gt'] if key in common]


def _paired_folders(prefix: str, dataset: Mapping, problems: List[Problem]) -> List[Dict[str, str]]:
    gt_folder, lq_folder = _folder(dataset, 'gt'), _folder(dataset, 'lq')
    tmpl = str(dataset.get('filename_tmpl', '{}'))
    gt_names, lq_names = sorted(scandir(gt_folder)), set(scandir(lq_folder))  # sorted: reports in name order
    samples, unpaired, used = [], [], set()
    for gt_name in gt_names:
        lq_name = _lq_name(tmpl, gt_name)
        if lq_name in lq_names:
            samples.append({'gt': osp.join(gt_folder, gt_name), 'lq': osp.join(lq_folder, lq_name)})
            used.add(lq_name)
        else:
            unpaired.append(f'{gt_name!r} (no {lq_name!r})')
    if unpaired:
        problems.append(Problem(f'{prefix}:filename_tmpl', f'{len(gt_names)} GT images',
                                f'without an LQ image named by filename_tmpl {tmpl!r} in dataroot_lq {lq_folder!r}',
                                unpaired))
    if len(lq_names) != len(gt_names):
        extra = sorted(lq_names - used)
        problems.append(Problem(f'{prefix}:dataroot_lq', f'{len(lq_names)} LQ images', f'that no GT image pairs with '
                                f'(BasicSR pairs the {len(gt_names)} GT and {len(lq_names)} LQ images one to one)',
                                [repr(name) for name in extra]))
    return samples


def _missing(paths: Sequence[str]) -> str:
    return ', '.join(repr(p) for p in paths if not osp.isfile(p))


def _paired_meta_info(prefix: str, dataset: Mapping, meta_key: str, problems: List[Problem]) -> List[Dict[str, str]]:
    gt_folder, lq_folder = _folder(dataset, 'gt'), _folder(dataset, 'lq')
    tmpl = str(dataset.get('filename_tmpl', '{}'))
    lines = _read_lines(dataset[meta_key])
    samples, bad = [], []
    for number, line in enumerate(lines, 1):
        if meta_key == 'meta_info':  # Real-ESRGAN: "gt_path, lq_path"
            parts = line.strip().split(', ')
            if len(parts) != 2:
                bad.append(f'line {number} {line.strip()!r} (not "GT, LQ")')
                continue
            gt, lq = osp.join(gt_folder, parts[0]), osp.join(lq_folder, parts[1])
        else:  # BasicSR: "gt_name [shape ...]", the LQ name from filename_tmpl
            gt_name = line.strip().split(' ')[0]
            if not gt_name:
                bad.append(f'line {number} (empty)')
                continue
            gt, lq = osp.join(gt_folder, gt_name), osp.join(lq_folder, _lq_name(tmpl, gt_name))
        missing = _missing((gt, lq))
        if missing:
            bad.append(f'line {number} {line.strip().split(" ")[0]!r} (no {missing})')
        else:
            samples.append({'gt': gt, 'lq': lq})
    if bad:
        problems.append(Problem(f'{prefix}:{meta_key}', f'{len(lines)} lines of {dataset[meta_key]!r}',
                                'that name no image pair', bad))
    return samples


def _single_role(prefix: str, dataset: Mapping, role: str, meta_key: str, lmdb: bool,
                 problems: List[Problem]) -> List[Dict[str, str]]:
    folder = _folder(dataset, role)
    if lmdb:
        keys = _lmdb_keys(prefix, folder, role, problems)
        return [{role: key} for key in keys or ()]
    if dataset.get(meta_key) is None:
        if role == 'gt' and meta_key not in dataset:  # RealESRGANDataset reads meta_info on disk
            problems.append(Problem(f'{prefix}:{meta_key}', '', f'not set, and {dataset.get("type")} on disk reads '
                                    'its images from it'))
            return []
        # SingleImageDataset; RealESRGANDataset with meta_info: ~ as aesop_basicsr.compat builds it (the authors')
        return [{role: path} for path in sorted(scandir(folder, full_path=True))]
    lines = _read_lines(dataset[meta_key])
    samples, bad = [], []
    for number, line in enumerate(lines, 1):
        name = line.strip().split(' ')[0]
        path = osp.join(folder, name)
        if name and osp.isfile(path):
            samples.append({role: path})
        else:
            bad.append(f'line {number} (empty)' if not name else f'line {number} {name!r} (no {path!r})')
    if bad:
        problems.append(Problem(f'{prefix}:{meta_key}', f'{len(lines)} lines of {dataset[meta_key]!r}',
                                'that name no image', bad))
    return samples


def resolve_dataset(prefix: str, dataset: Mapping) -> Optional[DatasetFiles]:
    """The images of one dataset option dict (after the folders were checked to exist), or None if not covered.

    Args:
        prefix: The option key of the dataset, e.g. ``datasets:train``; problems are named under it.
        dataset: Its options (``type``, ``io_backend``, ``dataroot_gt``/``dataroot_lq``, ...).
    """
    roles = dataset_roles(dataset.get('type'))
    backend = (dataset.get('io_backend') or {}).get('type', 'disk')
    if roles is None or backend not in ('disk', 'lmdb'):
        return None
    lmdb = backend == 'lmdb'
    problems: List[Problem] = []
    name = base_type(dataset.get('type'))
    for role in roles:
        if not dataset.get(f'dataroot_{role}') or not osp.isdir(_folder(dataset, role)):
            problems.append(Problem(f'{prefix}:dataroot_{role}', '', f'{dataset.get(f"dataroot_{role}")!r} is not a '
                                    f'folder, and {dataset.get("type")} reads its {role.upper()} images from one'))
    if problems:
        return DatasetFiles({}, [], problems)
    if roles == ('gt', 'lq'):
        meta_key = PAIRED_TYPES[name]
        tmpl = str(dataset.get('filename_tmpl', '{}'))
        try:
            _lq_name(tmpl, 'x.png')
        except (IndexError, KeyError, ValueError):
            problems.append(Problem(f'{prefix}:filename_tmpl', '',
                                    f'{tmpl!r} is not a file name template with one {{}}'))
            return DatasetFiles({}, [], problems)
        if lmdb:
            samples = _paired_lmdb(prefix, dataset, problems)
        elif dataset.get(meta_key) is not None:
            samples = _paired_meta_info(prefix, dataset, meta_key, problems)
        else:
            samples = _paired_folders(prefix, dataset, problems)
    else:
        samples = _single_role(prefix, dataset, roles[0], {**LQ_TYPES, **GT_TYPES}[name], lmdb, problems)
    if not samples:
        return DatasetFiles({}, [], problems)
    store = LmdbImages if lmdb else DiskImages
    return DatasetFiles({role: store(_folder(dataset, role)) for role in roles}, samples, problems)
