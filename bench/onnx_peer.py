"""onnxruntime's RoiAlign and MaxRoiPool as the CPU peer of the benchmark."""
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

OPSET = 16
IR_VERSION = 8  # onnxruntime 1.31 loads ir_version <= 13; 8 suits older ones too
VERSION = ort.__version__


def _model(node, inputs):
    graph = helper.make_graph(
        [node], node.op_type,
        [helper.make_tensor_value_info(name, dtype, shape) for name, dtype, shape in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["K", "C", "PH", "PW"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def roi_align_model(pooled, scale, sampling_ratio):
    """RoiAlign mode=avg, half_pixel (= torchvision aligned=True)."""
    node = helper.make_node(
        "RoiAlign", ["x", "rois", "batch_indices"], ["y"], mode="avg",
        output_height=pooled, output_width=pooled, sampling_ratio=sampling_ratio,
        spatial_scale=scale, coordinate_transformation_mode="half_pixel")
    return _model(node, [("x", TensorProto.FLOAT, ["N", "C", "H", "W"]),
                         ("rois", TensorProto.FLOAT, ["K", 4]),
                         ("batch_indices", TensorProto.INT64, ["K"])])


def max_roi_pool_model(pooled, scale):
    node = helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[pooled, pooled],
                            spatial_scale=scale)
    return _model(node, [("x", TensorProto.FLOAT, ["N", "C", "H", "W"]),
                         ("rois", TensorProto.FLOAT, ["K", 5])])


class Peer:
    """One onnxruntime session; call(x, rois) takes cyroi's (K, 5) rois."""

    def __init__(self, model, threads):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(model.SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])
        self.op = model.graph.node[0].op_type

    def feeds(self, x, rois):
        if self.op == "MaxRoiPool":
            return {"x": x, "rois": rois}
        return {"x": x, "rois": rois[:, 1:].copy(), "batch_indices": rois[:, 0].astype("int64")}

    def __call__(self, feeds):
        return self.session.run(None, feeds)[0]
