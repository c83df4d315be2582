"""`python -m cyroi`: the RoI layer of a two-stage detector on synthetic but
realistic data. Pools 512 proposals from a 2x256x50x68 stride-16 feature
map with roi_pool and roi_align, forward and backward, reports shapes,
timings and threads, and draws the difference between the two ops.
"""
import argparse
import statistics
import time

import numpy as np

from . import RoIAlign, RoIPool, __version__, get_num_threads, set_num_threads
from ._demo_data import IMAGE_HEIGHT, IMAGE_WIDTH, MAX_SIDE, MIN_SIDE, STRIDE, make_scene

OUTPUT_SIZE = (7, 7)
SAMPLING_RATIO = 2
REPEATS = 3


def main(argv=None):
    args = _parse_args(argv)
    if args.threads is not None:
        set_num_threads(args.threads)
    scene = make_scene(np.random.default_rng(args.seed))
    spatial_scale = 1 / STRIDE
    _print_inputs(scene)
    _, align_avg, _ = _print_timings(scene, spatial_scale)
    _print_sanity(scene, align_avg)
    print(_picture(args, scene, spatial_scale))
    return 0


def _print_inputs(scene):
    print(f"cyroi {__version__} demo on the CPU, threads: {get_num_threads()} "
          "(cyroi.get_num_threads())")
    print(f"features  {scene.features.shape} {scene.features.dtype}: stride-{STRIDE} maps of "
          f"{len(scene.features)} synthetic {IMAGE_HEIGHT}x{IMAGE_WIDTH} images")
    print(f"proposals {scene.rois.shape} [batch, x1, y1, x2, y2], sides {MIN_SIDE}-{MAX_SIDE} px: "
          f"{scene.is_object.sum()} on objects (IoU>=0.5), "
          f"{scene.is_background.sum()} background (IoU<0.3)\n")


def _print_timings(scene, spatial_scale):
    """Time forward and backward of roi_pool, roi_align avg and roi_align
    max; returns their outputs in that order."""
    ph, pw = OUTPUT_SIZE
    align = f"aligned=True, sampling_ratio={SAMPLING_RATIO}"
    layers = [(f"roi_pool  {ph}x{pw}", RoIPool(OUTPUT_SIZE, spatial_scale))] + [
        (f"roi_align {ph}x{pw} {mode}, {align}",
         RoIAlign(OUTPUT_SIZE, spatial_scale, SAMPLING_RATIO, aligned=True, mode=mode))
        for mode in ("avg", "max")]
    width = max(len(name) for name, _ in layers) + 2
    print(f"{'op':{width}}{'output':20}{'forward':>10}{'backward':>10}")
    outputs = []
    for name, layer in layers:
        out, forward = _median_time(lambda: layer.forward(scene.features, scene.rois))
        grad_out = np.ones_like(out)
        grad, backward = _median_time(lambda: layer.backward(grad_out))
        print(f"{name:{width}}{str(out.shape):20}{_ms(forward):>10}{_ms(backward):>10}")
        outputs.append(out)
    print(f"median of {REPEATS} runs; backward returns {grad.shape}, the features' gradient\n")
    return outputs


def _print_sanity(scene, align_avg):
    response = align_avg[:, scene.object_channels].mean(axis=(1, 2, 3))
    on_objects = response[scene.is_object].mean()
    on_background = response[scene.is_background].mean()
    print(f"sanity: roi_align avg of the {len(scene.object_channels)} object channels is "
          f"{on_objects:.3f} in object boxes vs {on_background:.3f} in background boxes "
          f"({on_objects / on_background:.1f}x)")


def _picture(args, scene, spatial_scale):
    if args.no_picture:
        return "picture: not drawn (--no-picture)"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f'picture: needs matplotlib; pip install "cyroi[plot]" to get {args.output}'
    from ._demo_picture import save_picture
    index, channel = save_picture(args.output, scene, spatial_scale, SAMPLING_RATIO)
    return (f"picture: {args.output} (proposal {index} over channel {channel}: "
            "roi_pool's bins vs roi_align's bins and sampling points)")


def _median_time(run):
    """The last result of run() and the median of REPEATS timed calls after
    a warm-up call (first calls pay for page faults and thread start-up)."""
    result = run()
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)


def _ms(seconds):
    return f"{seconds * 1e3:.1f} ms"


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text}")
    return value


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m cyroi", description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--output", default="cyroi-demo.png", metavar="PATH",
                        help="where to write the picture (default: %(default)s)")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="CPU threads for cyroi (default: OpenMP's, e.g. OMP_NUM_THREADS)")
    parser.add_argument("--no-picture", action="store_true", help="skip the picture")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
