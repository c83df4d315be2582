"""Synthetic detector data for `python -m cyroi`: a stride-16 feature map of
images with a few objects in them, and a region proposal network's output
for those images.

Nothing here is learned; it only has to look like the real thing to a RoI
op: feature channels that light up on objects, on their edges or on
background texture, smooth at the scale of a receptive field, and proposals
that crowd around the objects with a sprinkling of background boxes.
"""
from typing import NamedTuple

import numpy as np

IMAGE_HEIGHT, IMAGE_WIDTH = 800, 1088  # a Faster R-CNN input (short side 800, /32)
STRIDE = 16                            # ResNet C4 / VGG conv5
CHANNELS = 256
PROPOSALS_PER_IMAGE = 256
MIN_SIDE, MAX_SIDE = 16, 400           # proposal sides, in image pixels


class Scene(NamedTuple):
    """features (N, C, H/16, W/16) float32; rois (K, 5) [batch, x1, y1, x2, y2]
    in image pixels; is_object / is_background per proposal (IoU >= 0.5 /
    < 0.3 with an object); object_channels: the channels that respond to
    objects, strongest first."""
    features: np.ndarray
    rois: np.ndarray
    is_object: np.ndarray
    is_background: np.ndarray
    object_channels: np.ndarray


def make_scene(rng, n_images=2):
    images = [_render_image(rng) for _ in range(n_images)]
    weights = _channel_weights(rng)
    features = np.stack([_backbone(coverage, texture, weights, rng)
                         for coverage, texture, _ in images])
    rois, best_iou = [], []
    for index, (_, _, objects) in enumerate(images):
        boxes = _proposals(objects, rng)
        rois.append(np.column_stack([np.full(len(boxes), index), boxes]))
        best_iou.append(_iou(boxes, objects).max(axis=1))
    best_iou = np.concatenate(best_iou)
    object_channels = np.flatnonzero(weights[:, 0] > 0)
    object_channels = object_channels[np.argsort(-weights[object_channels, 0])]
    return Scene(features, np.concatenate(rois).astype(np.float32), best_iou >= 0.5,
                 best_iou < 0.3, object_channels)


def _render_image(rng):
    """An object-coverage image (soft ellipses, 1 inside an object) and a
    background texture, both IMAGE_HEIGHT x IMAGE_WIDTH, plus the objects'
    boxes (x1, y1, x2, y2)."""
    y = np.arange(IMAGE_HEIGHT, dtype=np.float32)[:, None] + 0.5  # pixel centres
    x = np.arange(IMAGE_WIDTH, dtype=np.float32)[None, :] + 0.5
    coverage = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), np.float32)
    boxes = []
    for _ in range(rng.integers(3, 6)):
        half_w, half_h = rng.uniform(40, 170, size=2)
        cx = rng.uniform(half_w, IMAGE_WIDTH - half_w)
        cy = rng.uniform(half_h, IMAGE_HEIGHT - half_h)
        radius = np.sqrt(((x - cx) / half_w) ** 2 + ((y - cy) / half_h) ** 2)
        # A logistic edge a few pixels wide: objects are not pixel-sharp.
        inside = 1 / (1 + np.exp(np.clip((radius - 1) * 25, -30, 30)))
        coverage = np.maximum(coverage, inside)
        boxes.append([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    texture = (np.sin(x / rng.uniform(60, 140) + rng.uniform(0, 6))
               * np.cos(y / rng.uniform(60, 140)) + rng.normal(0, 0.3, coverage.shape))
    return coverage, texture.astype(np.float32), np.array(boxes)


def _channel_weights(rng):
    """(C, 4) weights of each channel on (objects, object edges, background
    texture, bias): a quarter of the channels detect objects, an eighth
    their edges, the rest respond to texture or hardly at all."""
    kind = rng.permutation(np.repeat([0, 1, 2], [CHANNELS // 4, CHANNELS // 8,
                                                  CHANNELS - CHANNELS // 4 - CHANNELS // 8]))
    weights = np.zeros((CHANNELS, 4))
    weights[:, 3] = rng.uniform(-0.2, 0.1, CHANNELS)
    weights[np.arange(CHANNELS), kind] = rng.uniform(0.5, 1.5, CHANNELS)
    weights[kind == 2, 2] *= rng.uniform(0, 0.6, np.sum(kind == 2))
    return weights


def _backbone(coverage, texture, weights, rng):
    """Stride-16 features of one image: block means of the input, smoothed
    over a receptive field, mixed per channel, rectified."""
    objects = _smooth(_downsample(coverage))
    edges = np.hypot(*np.gradient(objects))
    edges /= edges.max()
    maps = np.stack([objects, edges, _smooth(_downsample(texture)), np.ones_like(objects)])
    mixed = np.tensordot(weights, maps, axes=1)
    mixed += rng.normal(0, 0.05, mixed.shape)
    return np.maximum(mixed, 0).astype(np.float32)


def _downsample(image):
    h, w = image.shape
    return image.reshape(h // STRIDE, STRIDE, w // STRIDE, STRIDE).mean(axis=(1, 3))


def _smooth(plane, sigma=0.8):
    taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(plane, 2, mode="edge")
    rows = sum(t * padded[i:i + plane.shape[0]] for i, t in enumerate(taps))
    return sum(t * rows[:, i:i + plane.shape[1]] for i, t in enumerate(taps))


def _proposals(objects, rng):
    """PROPOSALS_PER_IMAGE boxes like an RPN's top proposals after NMS: three
    quarters are jittered copies of the objects' boxes (shifted by up to
    about a fifth of their size, rescaled by up to about 25 %), the rest
    anywhere; sides within [MIN_SIDE, MAX_SIDE], clipped to the image."""
    n_near = PROPOSALS_PER_IMAGE * 3 // 4
    n_anywhere = PROPOSALS_PER_IMAGE - n_near
    source = objects[rng.integers(0, len(objects), n_near)]
    size = source[:, 2:] - source[:, :2]
    centre = (source[:, :2] + source[:, 2:]) / 2 + rng.normal(0, 0.1, size.shape) * size
    size = size * np.exp(rng.normal(0, 0.2, size.shape))
    near = np.hstack([centre, size])
    anywhere = np.hstack([rng.uniform(0, [IMAGE_WIDTH, IMAGE_HEIGHT], (n_anywhere, 2)),
                          np.exp(rng.uniform(np.log(MIN_SIDE), np.log(MAX_SIDE),
                                             (n_anywhere, 2)))])
    centre, size = np.hsplit(np.vstack([near, anywhere]), 2)
    size = np.clip(size, MIN_SIDE, MAX_SIDE)
    limit = np.array([IMAGE_WIDTH, IMAGE_HEIGHT])
    low = np.clip(centre - size / 2, 0, limit - MIN_SIDE)
    high = np.clip(centre + size / 2, low + MIN_SIDE, limit)
    return np.hstack([low, high])


def _iou(a, b):
    """(len(a), len(b)) intersection over union of x1, y1, x2, y2 boxes."""
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter)


def _area(boxes):
    return np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
