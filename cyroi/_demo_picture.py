"""The picture of `python -m cyroi`: one proposal over one feature channel,
as roi_pool sees it (box rounded to whole cells, integer bins) and as
roi_align sees it (the exact box, equal bins, bilinear sampling points).

The bins and sampling points are not recomputed here: they are measured by
running the ops on coordinate ramps (maps whose value is their own column
or row index), so the picture shows what the compiled kernels do.
"""
import numpy as np

from ._api import roi_align, roi_pool
from ._demo_data import STRIDE

# Fewer bins than the demo's 7x7, as in the usual RoI Align figure: with
# 7x7 bins on a 10-cell box, roi_pool's overlapping bins are unreadable.
BINS = (3, 3)
MARGIN = 2.5  # feature cells shown around the box
BIN_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:cyan", "white")
BOX_COLOUR = "gold"


def save_picture(path, scene, spatial_scale, sampling_ratio):
    """Draw the picture into path (PNG). Returns (proposal index, channel)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    channel = int(scene.object_channels[0])
    index = _pick_proposal(scene, channel, spatial_scale)
    image, *box = scene.rois[index].astype(np.float64)
    plane = scene.features[int(image), channel].astype(np.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.6), constrained_layout=True)
    for axes in (left, right):
        _draw_map(axes, plane, np.asarray(box) * spatial_scale)
    _draw_roi_pool(left, plane, box, spatial_scale)
    _draw_roi_align(right, plane.shape, box, spatial_scale, sampling_ratio)
    x1, y1, x2, y2 = box
    fig.suptitle(f"Proposal {index}, ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}) px in image "
                 f"{int(image)}, on channel {channel} of the stride-{STRIDE} feature map "
                 f"(spatial_scale=1/{STRIDE}); dashed: the proposal's exact box",
                 fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return index, channel


def _pick_proposal(scene, channel, spatial_scale):
    """An object proposal away from the map's border, 6 to 10 cells on a
    side (big enough to see, small enough to leave the cells readable),
    around which `channel` shows the object's edge, and whose corners sit
    far from cell corners (so roi_pool's rounding shows)."""
    corners = scene.rois[:, 1:].astype(np.float64) * spatial_scale
    sides = corners[:, 2:] - corners[:, :2]
    height, width = scene.features.shape[2:]
    inside = (np.all(corners[:, :2] >= MARGIN, axis=1)
              & (corners[:, 2] <= width - MARGIN) & (corners[:, 3] <= height - MARGIN))
    for wanted in (inside & scene.is_object & np.all(np.abs(sides - 9) <= 3, axis=1),
                   inside, np.ones(len(corners), bool)):
        candidates = np.flatnonzero(wanted)
        if len(candidates):
            break
    views = [_view(scene.features[int(scene.rois[i, 0]), channel], corners[i])
             for i in candidates]
    contrast = np.array([view.std() / max(view.max(), 1e-30) for view in views])
    off_grid = np.abs(corners[candidates] - np.round(corners[candidates])).min(axis=1)
    return int(candidates[np.argmax(contrast / max(contrast.max(), 1e-30) + off_grid)])


def _view(plane, box_on_map):
    """The cells shown around a box."""
    x1, y1, x2, y2 = box_on_map
    return plane[max(int(y1 - MARGIN), 0):int(y2 + MARGIN) + 1,
                 max(int(x1 - MARGIN), 0):int(x2 + MARGIN) + 1]


def _draw_map(axes, plane, box_on_map):
    height, width = plane.shape
    x1, y1, x2, y2 = box_on_map
    # Grey, and never white, so the coloured bins stand out everywhere.
    axes.imshow(plane, cmap="gray", vmin=0, vmax=1.4 * _view(plane, box_on_map).max(),
                extent=(0, width, height, 0), interpolation="nearest")
    axes.set_xlim(x1 - MARGIN, x2 + MARGIN)
    axes.set_ylim(y2 + MARGIN, y1 - MARGIN)
    axes.set_xticks(np.arange(np.ceil(x1 - MARGIN), x2 + MARGIN), minor=True)
    axes.set_yticks(np.arange(np.ceil(y1 - MARGIN), y2 + MARGIN), minor=True)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.grid(which="minor", color="black", alpha=0.5, linewidth=0.6)
    axes.tick_params(which="minor", length=0)
    axes.set_xlabel(f"feature-map column (a square is one cell, {STRIDE}x{STRIDE} image px)")
    axes.set_ylabel("feature-map row")
    axes.add_patch(_outline(x1, y1, x2, y2, BOX_COLOUR, linestyle="--", linewidth=1.8))


def _draw_roi_pool(axes, plane, box, spatial_scale):
    bins = _roi_pool_bins(plane.shape, box, spatial_scale).reshape(-1, 4)
    snapped = (*bins[:, :2].min(axis=0), *bins[:, 2:].max(axis=0))
    axes.add_patch(_outline(*snapped, BOX_COLOUR, linewidth=2.4))
    _, argmax = roi_pool(plane[None, None], np.array([[0, *box]]), BINS, spatial_scale,
                         return_argmax=True)
    rows, cols = np.divmod(argmax.ravel(), plane.shape[1])
    inset = 0.1  # neighbouring bins share a row or column of cells: inset shows both
    # Up to four bins can keep the same cell: each X sits in the part of
    # the cell that matches its bin's place in the grid, so none hides another.
    nudge = 0.27 * (np.indices(BINS).reshape(2, -1) - (np.array(BINS)[:, None] - 1) / 2)
    for (x1, y1, x2, y2), row, col, dy, dx, colour in zip(bins, rows, cols, *nudge, BIN_COLOURS):
        axes.add_patch(_outline(x1 + inset, y1 + inset, x2 - inset, y2 - inset, colour,
                                linewidth=2))
        axes.plot(col + 0.5 + dx, row + 0.5 + dy, "X", color=colour, markersize=9,
                  markeredgecolor="black")
    axes.set_title(f"roi_pool, {BINS[0]}x{BINS[1]} bins\nthe box rounded to whole cells (solid), "
                   "bins of whole cells that may share\na row or column; X: the one cell whose "
                   "value each bin keeps")


def _draw_roi_align(axes, shape, box, spatial_scale, sampling_ratio):
    x1, y1, x2, y2 = np.asarray(box) * spatial_scale
    ph, pw = BINS
    ys, xs = np.linspace(y1, y2, ph + 1), np.linspace(x1, x2, pw + 1)
    sample_x, sample_y = (grid.reshape(ph, sampling_ratio, pw, sampling_ratio).swapaxes(1, 2)
                          for grid in _roi_align_samples(shape, box, spatial_scale,
                                                         sampling_ratio))
    for (row, col), colour in zip(np.ndindex(ph, pw), BIN_COLOURS):
        axes.add_patch(_outline(xs[col], ys[row], xs[col + 1], ys[row + 1], colour, linewidth=2))
        axes.plot(sample_x[row, col].ravel(), sample_y[row, col].ravel(), "o", color=colour,
                  markersize=8, markeredgecolor="black")
    axes.set_title(f"roi_align, {ph}x{pw} bins, aligned=True, sampling_ratio={sampling_ratio}\n"
                   "the exact box cut into equal bins; each bin is the mean\nof its "
                   f"{sampling_ratio}x{sampling_ratio} bilinear samples (o)")


def _roi_pool_bins(shape, box, spatial_scale):
    """(PH, PW, 4) cell-edge bounds x1, y1, x2, y2 of each roi_pool bin of
    a box inside the map: the max of a column ramp over a bin is its last
    column, the max of the negated ramp minus its first (likewise rows)."""
    rows, cols = np.indices(shape, dtype=np.float64)
    ramps = np.stack([-cols, -rows, cols, rows])[None]
    bounds = np.moveaxis(roi_pool(ramps, np.array([[0, *box]]), BINS, spatial_scale)[0], 0, -1)
    bounds[..., :2] *= -1
    bounds[..., 2:] += 1  # the last cell's far edge
    return bounds


def _roi_align_samples(shape, box, spatial_scale, sampling_ratio):
    """x and y, in cell-edge coordinates, of roi_align's samples for a box
    inside the map, as (PH*s, PW*s) grids: an s x s grid in each bin of a
    PH x PW output is the one-sample grid of a (PH*s) x (PW*s) output, and
    bilinear interpolation of a ramp gives back the position."""
    rows, cols = np.indices(shape, dtype=np.float64)
    size = (BINS[0] * sampling_ratio, BINS[1] * sampling_ratio)
    xs, ys = roi_align(np.stack([cols, rows])[None], np.array([[0, *box]]), size, spatial_scale,
                       sampling_ratio=1, aligned=True)[0]
    return xs + 0.5, ys + 0.5  # aligned=True puts cell centres at +0.5


def _outline(x1, y1, x2, y2, colour, **style):
    from matplotlib.patches import Rectangle
    return Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, **style)
