"""The picture of `python -m cyroi`: one proposal over one feature channel,
as roi_pool sees it (box snapped to cells, integer bins) and as roi_align
sees it (the exact box, equal bins, bilinear sampling points).

The bins and sampling points are not recomputed here: they are measured by
running the ops on coordinate ramps (a map whose value is its own column or
row index), so the picture shows what the compiled kernels do.
"""
import numpy as np

from ._api import roi_align, roi_pool
from ._demo_data import STRIDE

MARGIN = 2.5  # feature cells shown around the box


def save_picture(path, scene, spatial_scale, output_size, sampling_ratio):
    """Draw the picture into path (PNG). Returns (proposal index, channel)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = _pick_proposal(scene, spatial_scale)
    channel = int(scene.object_channels[0])
    image, *box = scene.rois[index]
    plane = scene.features[int(image), channel]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.4), constrained_layout=True)
    for axes in (left, right):
        _draw_map(axes, plane, np.asarray(box) * spatial_scale)
    _draw_roi_pool(left, plane, box, spatial_scale, output_size)
    _draw_roi_align(right, plane.shape, box, spatial_scale, output_size, sampling_ratio)
    x1, y1, x2, y2 = box
    fig.suptitle(f"proposal {index}: ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}) px in image "
                 f"{int(image)}, over channel {channel} of the stride-{STRIDE} feature map "
                 f"(spatial_scale 1/{STRIDE}); dashed: the exact box", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return index, channel


def _pick_proposal(scene, spatial_scale):
    """An object proposal 8 to 13 cells on a side, away from the map's
    border, whose corners sit furthest from cell corners (so the snapping
    of roi_pool is easy to see)."""
    corners = scene.rois[:, 1:].astype(np.float64) * spatial_scale
    sides = corners[:, 2:] - corners[:, :2]
    height, width = scene.features.shape[2:]
    fits = (scene.is_object & np.all((sides >= 8) & (sides <= 13), axis=1)
            & np.all(corners[:, :2] >= MARGIN, axis=1)
            & (corners[:, 2] <= width - MARGIN) & (corners[:, 3] <= height - MARGIN))
    off_grid = np.abs(corners - np.round(corners)).min(axis=1)
    return int(np.argmax(np.where(fits, off_grid, -1)))


def _draw_map(axes, plane, box_on_map):
    height, width = plane.shape
    axes.imshow(plane, cmap="magma", extent=(0, width, height, 0), interpolation="nearest")
    x1, y1, x2, y2 = box_on_map
    axes.set_xlim(x1 - MARGIN, x2 + MARGIN)
    axes.set_ylim(y2 + MARGIN, y1 - MARGIN)
    axes.set_xticks(np.arange(np.ceil(x1 - MARGIN), x2 + MARGIN), minor=True)
    axes.set_yticks(np.arange(np.ceil(y1 - MARGIN), y2 + MARGIN), minor=True)
    axes.grid(which="minor", color="white", alpha=0.25, linewidth=0.6)
    axes.tick_params(which="minor", length=0)
    axes.set_xlabel("feature-map column (one square = one cell = 16 px)")
    axes.set_ylabel("feature-map row")
    axes.add_patch(_rectangle(x1, y1, x2, y2, color="deepskyblue", linestyle="--", linewidth=1.6))


def _draw_roi_pool(axes, plane, box, spatial_scale, output_size):
    bins = _roi_pool_bins(plane.shape, box, spatial_scale, output_size)
    inset = 0.12  # neighbouring bins share a cell: inset them to show it
    for x1, y1, x2, y2 in bins.reshape(-1, 4):
        axes.add_patch(_rectangle(x1 + inset, y1 + inset, x2 - inset, y2 - inset,
                                  color="white", linewidth=1))
    snapped = (bins[..., 0].min(), bins[..., 1].min(), bins[..., 2].max(), bins[..., 3].max())
    axes.add_patch(_rectangle(*snapped, color="orangered", linewidth=2.2))
    _, argmax = roi_pool(plane[None, None], np.array([[0, *box]]), output_size, spatial_scale,
                         return_argmax=True)
    rows, cols = np.divmod(argmax.ravel(), plane.shape[1])
    axes.plot(cols + 0.5, rows + 0.5, "x", color="cyan", markersize=6, markeredgewidth=1.5)
    ph, pw = bins.shape[:2]
    axes.set_title(f"roi_pool {ph}x{pw}: box rounded to whole cells (solid), integer bins\n"
                   "that overlap by a cell; x = the one cell whose value each bin keeps")


def _draw_roi_align(axes, shape, box, spatial_scale, output_size, sampling_ratio):
    x1, y1, x2, y2 = np.asarray(box, np.float64) * spatial_scale
    ph, pw = output_size
    for x in np.linspace(x1, x2, pw + 1):
        axes.plot([x, x], [y1, y2], color="white", linewidth=0.9)
    for y in np.linspace(y1, y2, ph + 1):
        axes.plot([x1, x2], [y, y], color="white", linewidth=0.9)
    axes.add_patch(_rectangle(x1, y1, x2, y2, color="orangered", linewidth=2.2))
    xs, ys = _roi_align_samples(shape, box, spatial_scale, output_size, sampling_ratio)
    axes.plot(xs.ravel(), ys.ravel(), "o", color="cyan", markersize=3.2)
    axes.set_title(f"roi_align {ph}x{pw}, aligned=True, sampling_ratio={sampling_ratio}: "
                   f"the exact box,\nequal bins, {sampling_ratio}x{sampling_ratio} bilinear "
                   "samples averaged per bin (o)")


def _roi_pool_bins(shape, box, spatial_scale, output_size):
    """(PH, PW, 4) cell bounds x1, y1, x2, y2 of each roi_pool bin: the max
    of a column ramp over a bin is its last column, of the negated ramp
    minus its first (likewise rows)."""
    rows, cols = np.indices(shape, dtype=np.float64)
    ramps = np.stack([-cols, -rows, cols, rows])[None]
    last_or_minus_first = roi_pool(ramps, np.array([[0, *box]]), output_size, spatial_scale)[0]
    bounds = np.moveaxis(last_or_minus_first, 0, -1)
    bounds[..., :2] *= -1
    bounds[..., 2:] += 1  # the last cell's far edge
    return bounds


def _roi_align_samples(shape, box, spatial_scale, output_size, sampling_ratio):
    """Where roi_align samples, in cell-edge coordinates: an s x s grid per
    bin of a PH x PW output is the one-sample grid of a (PH*s) x (PW*s)
    output, and bilinear interpolation of a ramp returns the position."""
    rows, cols = np.indices(shape, dtype=np.float64)
    size = (output_size[0] * sampling_ratio, output_size[1] * sampling_ratio)
    xs, ys = roi_align(np.stack([cols, rows])[None], np.array([[0, *box]]), size, spatial_scale,
                       sampling_ratio=1, aligned=True)[0]
    return xs + 0.5, ys + 0.5  # aligned=True puts cell centres at +0.5


def _rectangle(x1, y1, x2, y2, color, **style):
    from matplotlib.patches import Rectangle
    return Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, **style)
