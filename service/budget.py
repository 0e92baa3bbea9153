"""What a job will cost, estimated before it is queued, and the limits it must fit."""

import numpy as np

# Forward (2 FLOPs per weight per sample) plus backward (about twice that).
FLOPS_PER_PARAMETER_SAMPLE = 6


def estimate(spec: dict, n_samples: int, n_inputs: int) -> dict:
    """Parameters, FLOPs and weight bytes of a normalised spec on ``n_samples`` rows."""
    sizes = [n_inputs] + [layer["units"] for layer in spec["network"]["layers"]]
    parameters = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    flops_per_epoch = FLOPS_PER_PARAMETER_SAMPLE * n_samples * parameters
    itemsize = np.dtype(spec["network"]["dtype"]).itemsize
    return {
        "parameters": parameters,
        "flops_per_epoch": flops_per_epoch,
        "total_flops": flops_per_epoch * spec["training"]["epochs"],
        "weight_bytes": parameters * itemsize,
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
    return errors
