"""Lower-precision variants of a rewritten model for the GPU back ends."""

from __future__ import annotations

import onnx

# LayerNormalization's stash_type: the dtype of its mean and variance (1 = float32).
_FLOAT32 = onnx.TensorProto.FLOAT


def to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weights and activations in float16; inputs and outputs keep their types.

    LayerNormalization keeps float32 statistics (stash_type), and FusedMHA computes its softmax in
    float32 whatever its input type (docs/ops.md), so both statistics stay float32.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(model, keep_io_types=True)
    for node in converted.graph.node:
        if node.op_type == "LayerNormalization":
            stash = [a for a in node.attribute if a.name == "stash_type"]
            if stash:
                stash[0].i = _FLOAT32
            else:
                node.attribute.append(onnx.helper.make_attribute("stash_type", _FLOAT32))
    onnx.checker.check_model(converted)
    return converted
