"""Training data as BasicSR reads it: a check of every image before training, and decoding failures during it.

- :mod:`~aesop_basicsr.data.image_header`: size and sample depth of one image, from its header or decoded.
- :mod:`~aesop_basicsr.data.dataset_files`: the image files a dataset option dict names, resolved as BasicSR does.
- :mod:`~aesop_basicsr.data.dataset_check`: the check that ``aesop-train`` and ``aesop-check`` run.
- :mod:`~aesop_basicsr.data.unreadable_images`: a sample that fails to decode during training, named or skipped.
"""
