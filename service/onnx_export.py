"""A trained model as an ONNX graph: per layer MatMul, Add and the activation.

The graph takes ``input`` of shape (N, n_inputs) and gives ``output`` of shape (N, n_outputs), in
the model's own dtype (float32 or float64), with the weights and biases as initializers. A model
that standardises its inputs does it first, in float64 as the engine does.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from backprop import Model
from backprop.activations import get_activation

from .exceptions import ServiceError

INPUT, OUTPUT = "input", "output"
OPSET = 17
# The oldest IR version that can carry OPSET, so the file loads in older runtimes too.
IR_VERSION = helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)])
PRODUCER = "backprop-service"
DOUBLE = TensorProto.DOUBLE
ELEMENT_TYPES = {"float32": TensorProto.FLOAT, "float64": DOUBLE}
# Activations that are one ONNX operator with no attributes.
OPERATORS = {"linear": "Identity", "sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
WITH_ALPHA = {"leaky_relu": "LeakyRelu", "elu": "Elu"}
EXPORTABLE = frozenset({*OPERATORS, *WITH_ALPHA, "softmax"})


class UnsupportedActivation(ServiceError):
    """A layer's activation has no ONNX form here: the model predicts, but cannot be exported."""

    def __init__(self, layer: int, name: str):
        message = (
            f"Layer {layer}'s activation {name!r} has no ONNX form in this service yet; "
            "the model's weights can still be downloaded (format=npz)."
        )
        super().__init__(message, {f"network.layers.{layer}.activation": [message]})


def build(model: Model, name: str = "backprop") -> onnx.ModelProto:
    """The ONNX model that computes ``model.predict``.

    Args:
        model: a trained model.
        name: the graph's name.

    Raises:
        UnsupportedActivation: a layer's activation is not in ``EXPORTABLE``.
    """
    dtype = np.dtype(model.spec["network"]["dtype"])
    element_type = ELEMENT_TYPES[dtype.name]
    layers = model.spec["network"]["layers"]
    for i, config in enumerate(layers):
        if config["activation"] not in EXPORTABLE:
            raise UnsupportedActivation(i, config["activation"])
    nodes, initializers, x = standardization(model, dtype)
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


def standardization(model: Model, dtype: np.dtype):
    """Nodes computing ``(input - mean) / scale`` in float64, cast back to ``dtype``.

    Returns:
        (nodes, initializers, name of the standardised input): no nodes and ``input`` itself
        for a model without standardisation.
    """
    pre = model.preprocessor
    if pre.mean is None:
        return [], [], INPUT
    p = "standardize"
    initializers = [
        numpy_helper.from_array(pre.mean, f"{p}/mean"),
        numpy_helper.from_array(pre.scale, f"{p}/scale"),
    ]
    nodes, x = [], INPUT
    if dtype != np.float64:
        nodes.append(helper.make_node("Cast", [x], [f"{p}/X"], name=f"{p}/CastIn", to=DOUBLE))
        x = f"{p}/X"
    nodes += [
        helper.make_node("Sub", [x, f"{p}/mean"], [f"{p}/centred"], name=f"{p}/Sub"),
        helper.make_node("Div", [f"{p}/centred", f"{p}/scale"], [f"{p}/Z"], name=f"{p}/Div"),
    ]
    x = f"{p}/Z"
    if dtype != np.float64:
        to = ELEMENT_TYPES[dtype.name]
        nodes.append(helper.make_node("Cast", [x], [f"{p}/A"], name=f"{p}/CastOut", to=to))
        x = f"{p}/A"
    return nodes, initializers, x


def activation(config: dict, z: str, out: str, dtype: np.dtype, prefix: str):
    """Nodes computing ``out = f(z)`` for a layer's ``{"activation", "alpha"?}``, one of
    ``EXPORTABLE``.

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
    if dtype == np.float64:
        return from_primitives(name, z, out, alpha, dtype, prefix)
    return [helper.make_node(WITH_ALPHA[name], [z], [out], name=op_name, alpha=alpha)], []


def from_primitives(name: str, z: str, out: str, alpha: float, dtype: np.dtype, prefix: str):
    """leaky_relu or elu as relu(z) + alpha * g(min(z, 0)), g(x) = x or exp(x) - 1.

    For float64 models: ONNX keeps LeakyRelu's and Elu's alpha as a float32 attribute (an error
    of 1e-8 relative), and onnxruntime has no float64 Elu. min(z, 0) keeps exp from overflowing.
    """
    p = f"{prefix}/{name}"
    values = {"zero": 0.0, "alpha": alpha, **({"one": 1.0} if name == "elu" else {})}
    constants = [
        numpy_helper.from_array(np.array(value, dtype), f"{p}/{key}")
        for key, value in values.items()
    ]
    nodes = [
        helper.make_node("Relu", [z], [f"{p}/pos"], name=f"{p}/Relu"),
        helper.make_node("Min", [z, f"{p}/zero"], [f"{p}/neg"], name=f"{p}/Min"),
    ]
    neg = f"{p}/neg"
    if name == "elu":
        nodes += [
            helper.make_node("Exp", [neg], [f"{p}/exp"], name=f"{p}/Exp"),
            helper.make_node("Sub", [f"{p}/exp", f"{p}/one"], [f"{p}/expm1"], name=f"{p}/Sub"),
        ]
        neg = f"{p}/expm1"
    nodes += [
        helper.make_node("Mul", [neg, f"{p}/alpha"], [f"{p}/scaled"], name=f"{p}/Mul"),
        helper.make_node("Add", [f"{p}/pos", f"{p}/scaled"], [out], name=f"{p}/Add"),
    ]
    return nodes, constants
