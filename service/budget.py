"""What a job will cost, estimated before it is queued, and the limits it must fit."""

import numpy as np

# Forward (2 FLOPs per weight per sample) plus backward (about twice that).
FLOPS_PER_PARAMETER_SAMPLE = 6
# Parameters, gradients, two optimizer moments and two scratch buffers.
COPIES_PER_PARAMETER = 6
# Per layer and batch row: activations, their gradient, scratch, and logits at most.
BUFFERS_PER_UNIT = 4


def estimate(spec: dict, n_samples: int, n_inputs: int) -> dict:
    """Parameters, FLOPs and weight bytes of a normalised spec on ``n_samples`` rows."""
    sizes = [n_inputs] + [layer["units"] for layer in spec["network"]["layers"]]
    parameters = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    flops_per_epoch = FLOPS_PER_PARAMETER_SAMPLE * n_samples * parameters
    itemsize = np.dtype(spec["network"]["dtype"]).itemsize
    batch = min(spec["training"]["batch_size"] or n_samples, n_samples)
    n_outputs = sizes[-1]
    memory = itemsize * (
        COPIES_PER_PARAMETER * parameters
        + BUFFERS_PER_UNIT * batch * sum(sizes[1:])
        + (n_samples + batch) * (n_inputs + n_outputs)  # the data, and one shuffled batch
    )
    return {
        "parameters": parameters,
        "flops_per_epoch": flops_per_epoch,
        "total_flops": flops_per_epoch * spec["training"]["epochs"],
        "weight_bytes": parameters * itemsize,
        "memory_bytes": memory,
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
            f"(6 x samples x parameters x epochs); the limit is "
            f"{config['MAX_TRAINING_FLOPS']:.3g}."
        ]
    if cost["memory_bytes"] > config["MAX_TRAINING_MEMORY_BYTES"]:
        errors["training.batch_size"] = [
            f"Training needs about {cost['memory_bytes'] / 2**20:,.0f} MiB of worker memory "
            f"(weights, optimizer state, per-batch activations, data); the limit is "
            f"{config['MAX_TRAINING_MEMORY_BYTES'] / 2**20:,.0f} MiB. Use a smaller batch_size."
        ]
    return errors
