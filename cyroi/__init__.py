"""cyroi: Region-of-Interest ops for NumPy, CuPy and any DLPack array."""
from ._api import (multiscale_roi_align, multiscale_roi_align_backward, precise_roi_pool,
                   precise_roi_pool_backward, ps_roi_align, ps_roi_align_backward, ps_roi_pool,
                   ps_roi_pool_backward, roi_align, roi_align_backward, roi_align_rotated,
                   roi_align_rotated_backward, roi_pool, roi_pool_backward)
from ._modules import (MultiScaleRoIAlign, PreciseRoIPool, PSRoIAlign, PSRoIPool, RoIAlign,
                       RoIAlignRotated, RoIPool)
from ._memory import set_result_cache
from ._threads import get_num_threads, set_num_threads

__all__ = [
    "roi_align", "roi_align_backward", "roi_pool", "roi_pool_backward",
    "roi_align_rotated", "roi_align_rotated_backward",
    "ps_roi_align", "ps_roi_align_backward", "ps_roi_pool", "ps_roi_pool_backward",
    "precise_roi_pool", "precise_roi_pool_backward",
    "multiscale_roi_align", "multiscale_roi_align_backward",
    "RoIAlign", "RoIPool", "RoIAlignRotated", "PSRoIAlign", "PSRoIPool", "PreciseRoIPool",
    "MultiScaleRoIAlign",
    "get_num_threads", "set_num_threads", "set_result_cache",
]
__version__ = "0.1.0"
