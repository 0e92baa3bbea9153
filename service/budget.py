"""What a job will cost, estimated before it is queued, and the limits it must fit."""

import numpy as np

from backprop.spec import validation_rows

# Forward (2 FLOPs per weight per sample) plus backward (about twice that).
FLOPS_PER_PARAMETER_SAMPLE = 6
# Scoring a validation row is a forward pass only.
FLOPS_PER_PARAMETER_VALIDATION_ROW = 2
# Parameters, gradients, two optimizer moments and two scratch buffers.
COPIES_PER_PARAMETER = 6
# Per layer and batch row: activations, their gradient, scratch, and logits at most.
BUFFERS_PER_UNIT = 4
# The validation rows are scored in one pass (Trainer.evaluate -> Network.predict): each layer
# allocates its logits and outputs afresh while the previous layer's two are still held.
EVAL_BUFFERS_PER_UNIT = 2
# Temporaries of an activation's forward pass, in values of the layer's width: elu's
# negatives and their expm1, and for elu and leaky_relu a byte mask (a quarter of a float32).
ACTIVATION_SCRATCH = {"elu": 2.25, "leaky_relu": 0.25}
# At the output: the loss's gradient and up to three temporaries (huber's).
LOSS_SCRATCH = 4
# The validation metrics keep one difference array of the output's width between epochs.
METRIC_SCRATCH = 1
# Per row, whatever the widths: softmax's row maxima and sums, cross-entropy's per-row sums,
# accuracy's argmax indices; at most four 8-byte values at a time.
ROW_SCRATCH_BYTES = 32
STORED_ITEMSIZE = 8  # inline arrays arrive as JSON and are kept, and loaded, as float64


def evaluation_bytes(spec: dict, n_val: int) -> int:
    """Peak bytes that scoring ``n_val`` validation rows allocates, beyond the rows' arrays.

    Args:
        spec: a normalised spec.
    """
    itemsize = np.dtype(spec["network"]["dtype"]).itemsize
    layers = spec["network"]["layers"]
    peak, previous = 0, 0
    for layer in layers:
        units = layer["units"]
        scratch = ACTIVATION_SCRATCH.get(layer["activation"], 0)
        peak = max(peak, previous + (EVAL_BUFFERS_PER_UNIT + scratch) * units)
        previous = EVAL_BUFFERS_PER_UNIT * units
    n_outputs = layers[-1]["units"]
    peak = max(peak, (EVAL_BUFFERS_PER_UNIT + LOSS_SCRATCH) * n_outputs)
    per_row = (peak + METRIC_SCRATCH * n_outputs) * itemsize + ROW_SCRATCH_BYTES
    return int(n_val * per_row)


def estimate(spec: dict, n_samples: int, n_inputs: int, n_validation: int = 0) -> dict:
    """Parameters, FLOPs and weight bytes of a normalised spec on ``n_samples`` rows.

    Args:
        n_samples: rows of the training data, before a ``validation.fraction`` hold-out.
        n_validation: rows of an explicit validation set (``training.validation`` X and y).
    """
    sizes = [n_inputs] + [layer["units"] for layer in spec["network"]["layers"]]
    n_outputs = sizes[-1]
    parameters = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    itemsize = np.dtype(spec["network"]["dtype"]).itemsize
    validation = spec["training"]["validation"] or {}
    if "fraction" in validation:
        n_val = validation_rows(n_samples, validation["fraction"])
        n_train = n_samples - n_val
        # The hold-out copies every row once, into the training part or the validation part.
        validation_arrays = n_samples * (n_inputs + n_outputs) * itemsize
        field = "training.validation.fraction"
    else:
        n_val, n_train = n_validation, n_samples
        # As loaded (float64), and the engine's copy in the network's dtype if that differs.
        copies = STORED_ITEMSIZE + (itemsize if itemsize != STORED_ITEMSIZE else 0)
        validation_arrays = n_val * (n_inputs + n_outputs) * copies
        field = "training.validation.X"
    flops_per_epoch = parameters * (
        FLOPS_PER_PARAMETER_SAMPLE * n_train + FLOPS_PER_PARAMETER_VALIDATION_ROW * n_val
    )
    batch = min(spec["training"]["batch_size"] or n_train, n_train)
    training_memory = itemsize * (
        COPIES_PER_PARAMETER * parameters
        + BUFFERS_PER_UNIT * batch * sum(sizes[1:])
        + (n_samples + batch) * (n_inputs + n_outputs)  # the data, and one shuffled batch
    )
    validation_memory = 0
    if n_val:
        validation_memory = validation_arrays + evaluation_bytes(spec, n_val)
    return {
        "parameters": parameters,
        "flops_per_epoch": flops_per_epoch,
        "total_flops": flops_per_epoch * spec["training"]["epochs"],
        "weight_bytes": parameters * itemsize,
        "memory_bytes": training_memory + validation_memory,
        "validation_rows": n_val,
        "validation_memory_bytes": validation_memory,
        "validation_field": field,
    }


def violations(cost: dict, config) -> dict:
    """``{field path: [message]}`` for every limit ``cost`` exceeds; empty when it fits."""
    errors = {}
    if cost["parameters"] > config["MAX_PARAMETERS"]:
        errors["network.layers"] = [
            f"The network has {cost['parameters']:,} parameters; "
            f"the limit is {config['MAX_PARAMETERS']:,}."
        ]
    if cost["total_flops"] > config["MAX_TRAINING_FLOPS"]:
        errors["training.epochs"] = [
            f"Training needs about {cost['total_flops']:.3g} FLOPs "
            f"((6 x training rows + 2 x validation rows) x parameters x epochs); the limit is "
            f"{config['MAX_TRAINING_FLOPS']:.3g}."
        ]
    limit = config["MAX_TRAINING_MEMORY_BYTES"]
    if cost["memory_bytes"] > limit:
        needs = f"Training needs about {cost['memory_bytes'] / 2**20:,.0f} MiB of worker memory"
        limit_mib = f"the limit is {limit / 2**20:,.0f} MiB"
        validation = cost["validation_memory_bytes"]
        if cost["memory_bytes"] - validation <= limit:
            errors[cost["validation_field"]] = [
                f"{needs}, {validation / 2**20:,.0f} MiB of it to score the "
                f"{cost['validation_rows']:,} validation rows in one pass (their arrays and "
                f"every layer's activations); {limit_mib}. Use fewer validation rows."
            ]
        else:
            errors["training.batch_size"] = [
                f"{needs} (weights, optimizer state, per-batch activations, data, validation "
                f"rows); {limit_mib}. Use a smaller batch_size."
            ]
    return errors
