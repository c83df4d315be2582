"""Invalid values for each argument of the entry points. A broken call must
raise TypeError or ValueError whose message names the argument (one of
MESSAGE_NAMES), whatever validate says: validate=False skips only the checks
of RoI values (finite boxes, batch indices)."""
import math

import numpy as np

# Values substituted as they are; the str tokens of ARRAY_BREAKS transform
# the case's valid array instead.
BROKEN_VALUES = {
    "output_size": [0, -1, (2, 0), (0, 3), 2.0, "2", (2,), (1, 2, 3), None, True, (2, -5)],
    "spatial_scale": [0, 0.0, -1.0, math.nan, math.inf, -math.inf, "1", None, True, 10**400],
    "layout": ["nchw", "CHW", None, 0],
    "input_shape": [(1, 2, 3), (-1, 1, 4, 4), (1, 1, 0, 4), (1.0, 1, 4, 4), None, "NCHW"],
}
ARRAY_BREAKS = {
    "features": ["int32", "3-D", "no rows", "complex", "text"],
    "rois": ["no batch column", "6 columns", "1-D", "3-D", "bool", "text",
             "batch_indices with a list", "float batch_indices", "short batch_indices"],
    "grad_output": ["int32", "3-D", "extra RoI", "extra channel"],
    "argmax": ["float", "extra RoI", "missing"],
}
# grad_output's shape sets the pooled size, so a wrong one may be reported
# as an argmax that does not match it.
MESSAGE_NAMES = {"rois": ("rois", "batch_indices"), "grad_output": ("grad_output", "argmax")}


def breakable(entry, params):
    """{argument: [ways to break it]} for what `entry` takes."""
    family, kind = entry.family, entry.kind
    names = ["rois", "layout"]
    if kind != "backward":
        names += ["features", "output_size", "spatial_scale"]
    elif entry.reads_features:
        names.append("features")
    if kind != "forward":
        names.append("grad_output")
    if kind == "backward":
        if family.input_shape_keyword:
            names.append("input_shape")
        if any(k.startswith("spatial_scale") for k in family.backward_kwargs(1.0, {})):
            names.append("spatial_scale")
        if family.has_argmax(params):
            names.append("argmax")
    table = {name: BROKEN_VALUES.get(name) or ARRAY_BREAKS[name] for name in names}
    for name, values in family.broken_params.items():
        if name in table:  # an argument every op has, with the family's own ways to break it
            table[name] = table[name] + values
        elif name in params:  # an op parameter
            table[name] = values
    return table


def _array_break(how, array, channel_axis=1):
    if how == "int32":
        return np.asarray(array).astype(np.int32)
    if how == "3-D":
        array = np.asarray(array)
        return array.reshape(array.shape[0], array.shape[1], array.shape[2] * array.shape[3])
    if how == "no rows":
        return np.asarray(array)[:, :, :0]
    if how == "complex":
        return np.asarray(array).astype(np.complex64)
    if how == "text":
        return "not an array"
    if how == "extra RoI":
        array = np.asarray(array)
        return np.concatenate([array, array[:1] if len(array) else np.zeros_like(array,
                               shape=(1, *array.shape[1:]))])
    if how == "extra channel":
        array = np.asarray(array)
        shape = list(array.shape)
        shape[channel_axis] += 1
        return np.zeros(shape, array.dtype)
    if how == "float":
        return np.asarray(array).astype(np.float64)
    raise ValueError(f"unknown break {how!r}")


def _break_rois(case, how):
    table = case.table
    args = case.args
    if how == "no batch column":
        args["rois"], args["batch_indices"] = table[:, 1:], None
    elif how == "6 columns":
        args["rois"], args["batch_indices"] = np.column_stack([table, table[:, :1]]), None
    elif how == "1-D":
        args["rois"], args["batch_indices"] = table.reshape(-1), None
    elif how == "3-D":
        args["rois"], args["batch_indices"] = table[None], None
    elif how == "bool":
        args["rois"], args["batch_indices"] = table.astype(bool), None
    elif how == "text":
        args["rois"], args["batch_indices"] = table.astype(str), None
    elif how == "batch_indices with a list":
        args["rois"] = [table[:, 1:]]
        args["batch_indices"] = np.zeros(len(table), np.int64)
    elif how == "float batch_indices":
        args["rois"], args["batch_indices"] = table[:, 1:], table[:, 0].astype(np.float64)
    elif how == "short batch_indices":
        args["rois"], args["batch_indices"] = table[:, 1:], np.zeros(len(table) + 1, np.int64)
    else:
        raise ValueError(f"unknown break {how!r}")


def apply_broken(case, broken):
    """Applies the recipe's (argument, how) pairs to the case's arguments."""
    for name, how in broken:
        if name == "rois":
            _break_rois(case, how)
        elif name in ("features", "grad_output") and name in case.args:
            channel_axis = 3 if case.args["layout"] == "NHWC" else 1
            array = case.args[name]
            if isinstance(array, list):  # a pyramid: its first level broken
                case.args[name] = [_array_break(how, array[0], channel_axis)] + array[1:]
            else:
                case.args[name] = _array_break(how, array, channel_axis)
        elif name == "argmax":
            case.args["argmax"] = None if how == "missing" else _array_break(how,
                                                                             case.argmax_values)
        elif name in case.params:
            case.params = {**case.params, name: how}
        else:
            case.args[name] = how
        case.broken += MESSAGE_NAMES.get(name, (name,))
    return case
