"""A trained model as an ONNX graph: per layer MatMul, Add and the activation.

The graph takes ``input`` of shape (N, n_inputs) and gives ``output`` of shape (N, n_outputs), in
the model's own dtype (float32 or float64), with the weights and biases as initializers.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from backprop import Model
from backprop.activations import get_activation

INPUT, OUTPUT = "input", "output"
OPSET = 17
# The oldest IR version that can carry OPSET, so the file loads in older runtimes too.
IR_VERSION = helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)])
PRODUCER = "backprop-service"
ELEMENT_TYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
# Activations that are one ONNX operator with no attributes.
OPERATORS = {"linear": "Identity", "sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}


def build(model: Model, name: str = "backprop") -> onnx.ModelProto:
    """The ONNX model that computes ``model.predict``.

    Args:
        model: a trained model.
        name: the graph's name.
    """
    dtype = np.dtype(model.spec["network"]["dtype"])
    element_type = ELEMENT_TYPES[dtype.name]
    layers = model.spec["network"]["layers"]
    nodes, initializers = [], []
    x = INPUT
    for i, (config, (W, b)) in enumerate(zip(layers, model.network.parameters(), strict=True)):
        p = f"layer{i}"
        initializers += [numpy_helper.from_array(W, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [x, f"W{i}"], [f"{p}/XW"], name=f"{p}/MatMul"),
            helper.make_node("Add", [f"{p}/XW", f"b{i}"], [f"{p}/Z"], name=f"{p}/Add"),
        ]
        x = OUTPUT if i == len(layers) - 1 else f"{p}/A"
        act_nodes, act_constants = activation(config, f"{p}/Z", x, dtype, p)
        nodes += act_nodes
        initializers += act_constants
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT, element_type, ["N", model.n_inputs])],
        [helper.make_tensor_value_info(OUTPUT, element_type, ["N", model.n_outputs])],
        initializers,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
    )


def to_bytes(model: Model, name: str = "backprop") -> bytes:
    """The serialised ONNX model (protobuf bytes) of ``build``."""
    return build(model, name).SerializeToString()


def activation(config: dict, z: str, out: str, dtype: np.dtype, prefix: str):
    """Nodes computing ``out = f(z)`` for a layer's ``{"activation", "alpha"?}``.

    Returns:
        (nodes, initializers): the nodes, and the scalar constants they read.
    """
    name = config["activation"]
    op_name = f"{prefix}/{name}"
    if name in OPERATORS:
        return [helper.make_node(OPERATORS[name], [z], [out], name=op_name)], []
    if name == "softmax":
        return [helper.make_node("Softmax", [z], [out], name=op_name, axis=-1)], []
    alpha = get_activation(config).alpha  # the engine's own default when the spec has none
    if name == "leaky_relu":
        return [helper.make_node("LeakyRelu", [z], [out], name=op_name, alpha=alpha)], []
    if name == "elu" and dtype == np.float32:
        return [helper.make_node("Elu", [z], [out], name=op_name, alpha=alpha)], []
    if name == "elu":
        return elu_from_primitives(z, out, alpha, dtype, prefix)
    raise ValueError(f"no ONNX form for activation {name!r}")


def elu_from_primitives(z: str, out: str, alpha: float, dtype: np.dtype, prefix: str):
    """ELU as relu(z) + alpha * (exp(min(z, 0)) - 1).

    onnxruntime has no float64 kernel for Elu; min(z, 0) keeps exp from overflowing.
    """
    p = f"{prefix}/elu"
    constants = [
        numpy_helper.from_array(np.array(value, dtype), f"{p}/{key}")
        for key, value in (("zero", 0.0), ("one", 1.0), ("alpha", alpha))
    ]
    nodes = [
        helper.make_node("Relu", [z], [f"{p}/pos"], name=f"{p}/Relu"),
        helper.make_node("Min", [z, f"{p}/zero"], [f"{p}/neg"], name=f"{p}/Min"),
        helper.make_node("Exp", [f"{p}/neg"], [f"{p}/exp"], name=f"{p}/Exp"),
        helper.make_node("Sub", [f"{p}/exp", f"{p}/one"], [f"{p}/expm1"], name=f"{p}/Sub"),
        helper.make_node("Mul", [f"{p}/expm1", f"{p}/alpha"], [f"{p}/scaled"], name=f"{p}/Mul"),
        helper.make_node("Add", [f"{p}/pos", f"{p}/scaled"], [out], name=f"{p}/Add"),
    ]
    return nodes, constants
