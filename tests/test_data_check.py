"""The data check before training, and images that fail to decode during it, on real photos and BasicSR's datasets.

Every accepted case is also read by BasicSR's own dataset class (what the check claims BasicSR can
read, it reads); every refused case is named in one line with its option key and file.
"""
import logging
import os
from os import path as osp

import cv2
import numpy as np
import pytest
from basicsr.data import build_dataset
from PIL import Image
from torch.utils.data import DataLoader

from aesop_basicsr.data.dataset_check import DataCheckError, check_datasets
from aesop_basicsr.data.unreadable_images import NamedDecodeFailures, UnreadableImageError
from aesop_basicsr.utils.sample_data import bicubic_downscale, load_photo

PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'coins', 'camera')


def write(path, image) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return str(path)


def write_pairs(root, names=PHOTOS[:2], hr=64, scale=4, transform=lambda image: image, ext='png') -> dict:
    """HR crops of real photos and their MATLAB-bicubic LR images, through ``transform`` (e.g. to 16 bits)."""
    folders = {'gt': osp.join(root, 'hr'), 'lq': osp.join(root, 'lr')}
    for name in names:
        crop = load_photo(name)[:hr, :hr]
        write(osp.join(folders['gt'], f'{name}.{ext}'), transform(crop))
        write(osp.join(folders['lq'], f'{name}.{ext}'), transform(bicubic_downscale(crop, scale)))
    return folders


def paired(folders, **extra) -> dict:
    return dict(type='PairedImageDataset', io_backend={'type': 'disk'}, dataroot_gt=folders['gt'],
                dataroot_lq=folders['lq'], **extra)


def problems_of(opt, mode='headers') -> list:
    """The lines of the check's error (the header line of several problems left out)."""
    with pytest.raises(DataCheckError) as err:
        check_datasets(opt, 'o.yml', mode)
    lines = str(err.value).splitlines()
    return [line.strip() for line in (lines[1:] if len(lines) > 1 else lines)]


def basicsr_reads(dataset_opt, name, phase='train', scale=4):
    return build_dataset(dict(dataset_opt, name=name, phase=phase, scale=scale, use_hflip=False, use_rot=False))[0]


def test_16_bit_and_grey_pairs_are_accepted_and_basicsr_reads_them(tmp_path):
    sixteen = write_pairs(str(tmp_path / 'u16'), transform=lambda image: image.astype(np.uint16) * 257)
    grey = write_pairs(str(tmp_path / 'grey'), transform=lambda image: cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert cv2.imread(osp.join(sixteen['gt'], 'coffee.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cv2.imread(osp.join(grey['lq'], 'coffee.png'), cv2.IMREAD_UNCHANGED).ndim == 2
    opt = {'scale': 4, 'datasets': {'train': paired(sixteen, gt_size=32),
                                    'train_grey': paired(grey, gt_size=32, color='y'), 'val': paired(grey)}}
    for mode in ('headers', 'full'):
        summary = check_datasets(opt, 'o.yml', mode)
        assert (summary.datasets, summary.images) == (3, 12), str(summary)
        assert 'no problems' in str(summary)
    assert basicsr_reads(opt['datasets']['train'], 'u16')['gt'].shape == (3, 32, 32)
    assert basicsr_reads(opt['datasets']['train_grey'], 'grey')['lq'].shape == (1, 8, 8)  # color: y


def test_every_problem_is_named_in_one_line_with_its_key_and_files(tmp_path):
    field = write_pairs(str(tmp_path / 'field'), names=PHOTOS, hr=128)
    open(osp.join(field['gt'], 'coffee.png'), 'wb').close()  # 0 bytes
    Image.fromarray(np.zeros((128, 128), np.float32)).save(osp.join(field['gt'], 'float.tif'))
    write(osp.join(field['lq'], 'float.tif'), np.zeros((32, 32, 3), np.uint8))
    with open(osp.join(field['gt'], 'notes.png'), 'w') as f:
        f.write('not an image')
    write(osp.join(field['lq'], 'notes.png'), np.zeros((32, 32, 3), np.uint8))
    photo = load_photo('astronaut')
    write(osp.join(field['gt'], 'hr203.png'), photo[:203, :203])
    write(osp.join(field['lq'], 'hr203.png'), bicubic_downscale(photo[:200, :200], 4))
    for name in ('small_a', 'small_b', 'small_c', 'small_d'):  # more small ones than the line names
        write(osp.join(field['gt'], f'{name}.png'), photo[:96, :96])
        write(osp.join(field['lq'], f'{name}.png'), bicubic_downscale(photo[:96, :96], 4))

    template = write_pairs(str(tmp_path / 'tmpl'))
    meta = tmp_path / 'meta_info.txt'
    meta.write_text('astronaut.png (64,64,3)\n\nmissing.png (64,64,3)\ncoffee.png (64,64,3)\n')
    extra_lq = write_pairs(str(tmp_path / 'extra'))
    write(osp.join(extra_lq['lq'], 'orphan.png'), np.zeros((16, 16, 3), np.uint8))
    opt = {'scale': 4, 'datasets': {
        'train': paired(field, gt_size=128),
        'train_bad_tmpl': paired(template, gt_size=32, filename_tmpl='{name}_x4'),
        'train_tmpl': paired(template, gt_size=32, filename_tmpl='{}x4'),
        'val_meta': paired(template, meta_info_file=str(meta)),
        'val_extra': paired(extra_lq),
    }}
    lines = problems_of(opt)
    gt, lq = field['gt'], field['lq']
    assert lines == [
        f"datasets:train:dataroot_gt: 3 of 13 GT images cannot be read: '{gt}/coffee.png' (empty file, 0 bytes), "
        f"'{gt}/float.tif' (TIFF with 32-bit samples (mode F); BasicSR reads 8- and 16-bit images), "
        f"'{gt}/notes.png' (not an image file (unknown format)).",
        f"datasets:train: 1 of 10 pairs where GT is not exactly scale 4 x LQ: '{gt}/hr203.png' 203x203, "
        f"LQ '{lq}/hr203.png' 50x50 (x4: 200x200).",
        f'datasets:train: 4 of 10 pairs where LQ is smaller than the LQ patch 32x32 (gt_size 128 / scale 4): '
        f"'{lq}/small_a.png' 24x24, '{lq}/small_b.png' 24x24, '{lq}/small_c.png' 24x24, and 1 more.",
        "datasets:train_bad_tmpl:filename_tmpl: '{name}_x4' is not a file name template with one {}.",
        f"datasets:train_tmpl:filename_tmpl: 2 of 2 GT images without an LQ image named by filename_tmpl '{{}}x4' "
        f"in dataroot_lq '{template['lq']}': 'astronaut.png' (no 'astronautx4.png'), 'coffee.png' (no 'coffeex4.png').",
        f"datasets:val_meta:meta_info_file: 2 of 4 lines of '{meta}' that name no image pair: line 2 (empty), "
        f"line 3 'missing.png' (no '{template['gt']}/missing.png', '{template['lq']}/missing.png').",
        "datasets:val_extra:dataroot_lq: 1 of 3 LQ images that no GT image pairs with (BasicSR pairs the 2 GT and "
        "3 LQ images one to one): 'orphan.png'.",
    ]
    # one problem: one line, naming the option file too
    with pytest.raises(DataCheckError, match=r"^datasets:val_extra:dataroot_lq \(in o.yml\): 1 of 3 LQ images .*"
                                             r"'orphan.png'\.$"):
        check_datasets({'scale': 4, 'datasets': {'val_extra': paired(extra_lq)}}, 'o.yml')


def test_outside_training_gt_may_exceed_lq_times_scale_by_less_than_the_scale(tmp_path):
    """BasicSR crops validation GT to LQ x scale (benchmark HR sizes are not multiples of 4); training needs exact."""
    photo = load_photo('coffee')
    folders = {}
    for hr in (203, 204):
        folders[hr] = {'gt': str(tmp_path / f'hr{hr}'), 'lq': str(tmp_path / f'lr{hr}')}
        write(osp.join(folders[hr]['gt'], 'x.png'), photo[:hr, :hr])
        write(osp.join(folders[hr]['lq'], 'x.png'), bicubic_downscale(photo[:200, :200], 4))
    assert check_datasets({'scale': 4, 'datasets': {'val': paired(folders[203])}}, 'o.yml').images == 2
    assert basicsr_reads(paired(folders[203]), 'val203', phase='val')['gt'].shape == (3, 200, 200)
    assert problems_of({'scale': 4, 'datasets': {'val': paired(folders[204])}})[0].startswith(
        'datasets:val (in o.yml): 1 of 1 pairs where GT is not scale 4 x LQ (outside training BasicSR crops GT to '
        f"LQ x 4, so up to 3 px more is allowed): '{folders[204]['gt']}/x.png' 204x204")
    assert 'not exactly scale 4 x LQ' in problems_of({'scale': 4, 'datasets': {'train': paired(folders[203],
                                                                                                gt_size=32)}})[0]


def test_exif_rotated_jpeg_is_sized_as_opencv_decodes_it(tmp_path):
    """OpenCV (so BasicSR) applies the EXIF orientation: a 'rotate 90' LR JPEG stored 16x32 is 32x16."""
    hr = load_photo('rocket')[:64, :128]  # 128x64
    folders = {'gt': str(tmp_path / 'hr'), 'lq': str(tmp_path / 'lr')}
    write(osp.join(folders['gt'], 'r.jpg'), hr)
    stored = np.ascontiguousarray(np.rot90(bicubic_downscale(hr, 4), 1)[..., ::-1])  # 16 wide, 32 high, RGB
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise when shown
    os.makedirs(folders['lq'])
    Image.fromarray(stored).save(osp.join(folders['lq'], 'r.jpg'), exif=exif.tobytes())
    assert cv2.imread(osp.join(folders['lq'], 'r.jpg')).shape[:2] == (16, 32)
    for mode in ('headers', 'full'):
        assert check_datasets({'scale': 4, 'datasets': {'train': paired(folders, gt_size=64)}}, 'o.yml', mode)


def truncate_after_header(path: str) -> str:
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    return path


def test_full_mode_finds_a_file_truncated_after_its_header(tmp_path):
    folders = write_pairs(str(tmp_path / 'p'))
    cut = truncate_after_header(osp.join(folders['gt'], 'astronaut.png'))
    opt = {'scale': 4, 'datasets': {'val': paired(folders)}}
    assert check_datasets(opt, 'o.yml', 'headers').images == 4  # the header is intact
    assert problems_of(opt, 'full') == [f"datasets:val:dataroot_gt (in o.yml): 1 of 2 GT images cannot be read: "
                                        f"'{cut}' (OpenCV cannot decode it: truncated or damaged)."]


def test_lmdb_pairs_as_basicsr_writes_them(tmp_path):
    import lmdb
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    folders = write_pairs(str(tmp_path / 'p'), names=PHOTOS[:3])
    dbs = {}
    for role, names in (('gt', PHOTOS[:3]), ('lq', PHOTOS[:2])):
        dbs[role] = str(tmp_path / f'{role}.lmdb')
        make_lmdb_from_imgs(folders[role], dbs[role], [f'{n}.png' for n in names], list(names), map_size=1 << 30)
    dataset = dict(type='PairedImageDataset', io_backend={'type': 'lmdb'}, dataroot_gt=dbs['gt'],
                   dataroot_lq=dbs['lq'])
    assert problems_of({'scale': 4, 'datasets': {'train': dict(dataset, gt_size=32)}}) == [
        "datasets:train:dataroot_gt (in o.yml): 1 of 3 keys not in the LQ database (BasicSR needs the same keys in "
        "both): 'chelsea'."]
    env = lmdb.open(dbs['gt'], map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.put(b'coffee', b'')
    env.close()
    with open(osp.join(dbs['gt'], 'meta_info.txt')) as f:
        keep = [line for line in f if not line.startswith('chelsea')]
    with open(osp.join(dbs['gt'], 'meta_info.txt'), 'w') as f:
        f.writelines(keep)
    assert problems_of({'scale': 4, 'datasets': {'train': dict(dataset, gt_size=32)}}) == [
        f"datasets:train:dataroot_gt (in o.yml): 1 of 2 GT images cannot be read: '{dbs['gt']}'['coffee'] "
        "(empty file, 0 bytes)."]


def test_single_image_and_gt_only_datasets_and_types_not_covered(tmp_path):
    folders = write_pairs(str(tmp_path / 'p'))
    open(osp.join(folders['lq'], 'empty.png'), 'wb').close()
    opt = {'scale': 4, 'datasets': {
        'test': dict(type='SingleImageDataset', io_backend={'type': 'disk'}, dataroot_lq=folders['lq']),
        'train': dict(type='RealESRGANDataset', io_backend={'type': 'disk'}, dataroot_gt=folders['gt']),
        'val': dict(type='PairedImageDataset', io_backend={'type': 'disk'}, dataroot_gt=folders['gt']),
    }}
    assert problems_of(opt) == [
        f"datasets:test:dataroot_lq: 1 of 3 LQ images cannot be read: '{folders['lq']}/empty.png' "
        '(empty file, 0 bytes).',
        'datasets:train:meta_info: not set, and RealESRGANDataset on disk reads its images from it.',
        'datasets:val:dataroot_lq: None is not a folder, and PairedImageDataset reads its LQ images from one.']
    os.remove(osp.join(folders['lq'], 'empty.png'))
    summary = check_datasets({'datasets': {
        'test': opt['datasets']['test'],
        'train': dict(opt['datasets']['train'], meta_info=None),  # the authors' files: their dataset lists the folder
        'val': dict(type='VideoTestDataset', io_backend={'type': 'disk'}, dataroot_lq=folders['lq'])}}, 'o.yml')
    assert summary.images == 4 and summary.not_checked == ['datasets:val (VideoTestDataset)']


# ---- during training ------------------------------------------------------------------------------
@pytest.fixture
def truncated_train_set(tmp_path):
    folders = write_pairs(str(tmp_path / 'p'), names=PHOTOS[:3])
    truncate_after_header(osp.join(folders['gt'], 'coffee.png'))
    opt = dict(paired(folders, gt_size=32, use_hflip=False, use_rot=False), name='photos', phase='train', scale=4)
    return build_dataset(opt), osp.join(folders['gt'], 'coffee.png')


def test_decode_failure_in_a_dataloader_worker_is_one_line_naming_the_file_and_key(truncated_train_set):
    dataset, bad = truncated_train_set
    index = [i for i, p in enumerate(dataset.paths) if p['gt_path'] == bad][0]
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'astype'"):
        dataset[index]  # BasicSR alone: no file named
    guarded = NamedDecodeFailures(dataset, 'datasets:train')
    assert guarded.opt['name'] == 'photos' and len(guarded) == 3  # BasicSR reads these through the wrapper
    loader = DataLoader(guarded, batch_size=1, sampler=[index], num_workers=1)
    with pytest.raises(UnreadableImageError) as err:
        next(iter(loader))
    assert str(err.value) == (
        f"datasets:train: '{bad}' cannot be decoded (OpenCV cannot decode it: truncated or damaged); stopped. "
        'Replace or remove the file (a training run resumes from its last saved state with --auto_resume), or set '
        'datasets:train:on_unreadable_image: skip to skip such images with a warning.')


def test_skip_mode_uses_the_next_sample_and_warns_once_per_file(truncated_train_set, caplog):
    dataset, bad = truncated_train_set
    index = [i for i, p in enumerate(dataset.paths) if p['gt_path'] == bad][0]
    guarded = NamedDecodeFailures(dataset, 'datasets:train', 'skip')
    logger = logging.getLogger('basicsr')
    logger.addHandler(caplog.handler)
    try:
        samples = [guarded[index] for _ in range(2)]
    finally:
        logger.removeHandler(caplog.handler)
    following = dataset.paths[(index + 1) % 3]['gt_path']
    assert [sample['gt_path'] for sample in samples] == [following, following]
    warnings = [r.getMessage() for r in caplog.records if 'cannot be decoded' in r.getMessage()]
    assert warnings == [f"datasets:train: '{bad}' cannot be decoded (OpenCV cannot decode it: truncated or damaged); "
                        'skipped (on_unreadable_image: skip), the next sample is used instead.']


def test_a_failure_no_file_explains_is_raised_unchanged(tmp_path):
    photo = load_photo('coffee')
    folders = {'gt': str(tmp_path / 'hr'), 'lq': str(tmp_path / 'lr')}
    write(osp.join(folders['gt'], 'x.png'), photo[:203, :203])
    write(osp.join(folders['lq'], 'x.png'), bicubic_downscale(photo[:200, :200], 4))
    dataset = build_dataset(dict(paired(folders, gt_size=32, use_hflip=False, use_rot=False), name='x', phase='train',
                                 scale=4))
    with pytest.raises(ValueError, match='Scale mismatches'):
        NamedDecodeFailures(dataset, 'datasets:train', 'skip')[0]
