"""The demo's training pairs in every channel order, so that no colour is favoured.

The demo trains on a handful of scikit-image photos whose colours are far from balanced: two are
grey and two red-dominated micrographs (retina, immunohistochemistry), so their crops average
R 131, G 104, B 94 grey levels. A network that is trained for minutes learns the colour mapping
these photos teach: on held-out photos it tinted saturated colours pink (coffee: green -6.6, blue
+7.0 grey levels). Writing each colour pair also in the other five orders of its R, G and B channels
makes every channel equally likely in every role, which removes that bias; the LR image of a
permuted HR image is exactly the permuted LR image, since bicubic downscaling acts on each channel
alone.
"""
import itertools
from os import path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np
from basicsr.utils import scandir

CHANNEL_ORDERS: Tuple[Tuple[int, ...], ...] = tuple(itertools.permutations(range(3)))  # identity first


def write_channel_orders(folders: Dict[str, str]) -> List[str]:
    """Add ``<stem>_c<k>.png`` to both folders for every other channel order of each colour pair.

    ``folders`` is ``{'gt': HR folder, 'lq': LR folder}`` as ``sample_data.write_paired_dataset`` returns;
    pairs with the same file name are HR and LR of one crop. A grey pair (all channels equal) gains
    no copies. Returns the new file names.

    Raises:
        ValueError: an HR image has no LR partner of the same name, or an image is not 3-channel.
    """
    added = []
    for name in sorted(scandir(folders['gt'], suffix='png')):
        paths = {key: osp.join(folder, name) for key, folder in folders.items()}
        if not osp.isfile(paths['lq']):
            raise ValueError(f'write_channel_orders: {paths["gt"]} has no LR partner {paths["lq"]}.')
        images = {key: cv2.imread(path, cv2.IMREAD_UNCHANGED) for key, path in paths.items()}
        for key, image in images.items():
            if image is None or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f'write_channel_orders: {paths[key]} is not a 3-channel image.')
        if all(np.array_equal(image[..., 0], image[..., c]) for image in images.values() for c in (1, 2)):
            continue
        stem, ext = osp.splitext(name)
        for index, order in enumerate(CHANNEL_ORDERS[1:], 1):
            new_name = f'{stem}_c{index}{ext}'
            for key, image in images.items():
                cv2.imwrite(osp.join(folders[key], new_name), np.ascontiguousarray(image[..., list(order)]))
            added.append(new_name)
    return added
