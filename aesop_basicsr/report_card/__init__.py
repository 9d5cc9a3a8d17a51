"""``aesop-inspect --report``: is an AESOP auto-encoder any good?

- :mod:`~aesop_basicsr.report_card.reconstruction`: reconstruction PSNR/SSIM and code PSNR per HR image;
- :mod:`~aesop_basicsr.report_card.frequency_response`: how strongly AESOP and L1 respond to each spatial frequency;
- :mod:`~aesop_basicsr.report_card.card`: verdicts, plot and the written report.
"""
from aesop_basicsr.report_card.card import report_markdown, write_report_card
from aesop_basicsr.report_card.frequency_response import (FrequencyResponse, bicubic_transfer, box_transfer,
                                                          measure_frequency_response)

__all__ = ['FrequencyResponse', 'bicubic_transfer', 'box_transfer', 'measure_frequency_response', 'report_markdown',
           'write_report_card']
