#!/usr/bin/env python3
"""Fold the LAION improved aesthetic predictor into the one affine map the service reads.

The predictor (sac+logos+ava1-l14-linearMSE.pth) is Linear(768,1024) -> Linear(1024,128) -> Linear(128,64)
-> Linear(64,16) -> Linear(16,1) with dropouts in between and no activations, so at inference it equals
w . x + b. This script multiplies the layers out (in float64) and writes safetensors with two float32
tensors: `weight` (1 x 768) and `bias` (1). Run it where PyTorch is installed (the GPU worker's environment):

    python workers/gpu/tools/convert_aesthetic.py models/aesthetic/sac+logos+ava1-l14-linearMSE.pth \
        models/aesthetic/laion-aesthetic-l14.safetensors

A state dict saved as JSON ({"layers.0.weight": [[...]], ...}) is read without PyTorch.
"""
import argparse
import json
import os
import re
import struct
import sys


def load_state_dict(path):
    """name -> nested lists of floats."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    import torch  # only needed for .pth files

    state = torch.load(path, map_location="cpu", weights_only=True)
    return {name: tensor.double().tolist() for name, tensor in state.items()}


def linear_layers(state):
    """[(weight rows, bias)] of every `<prefix>.<index>.weight` in index order."""
    found = []
    for name in state:
        match = re.fullmatch(r"(.*\.)?(\d+)\.weight", name)
        if match:
            found.append((int(match.group(2)), name[: -len("weight")]))
    if not found:
        raise SystemExit("no linear layers (*.N.weight) in the state dict")
    layers = []
    for _, prefix in sorted(found):
        weight = state[prefix + "weight"]
        bias = state.get(prefix + "bias", [0.0] * len(weight))
        layers.append((weight, bias))
    return layers


def fold(layers):
    """The affine map x -> W_n(...(W_1 x + b_1)...) + b_n as (weight rows, bias).

    Multiplied out from the output side, so the cost is outputs x (sum of layer sizes), not a chain of
    full matrix products (the predictor has one output).
    """
    weight = [list(map(float, row)) for row in layers[-1][0]]
    bias = list(map(float, layers[-1][1]))
    for layer_weight, layer_bias in reversed(layers[:-1]):
        if len(weight[0]) != len(layer_weight):
            raise SystemExit(f"layer shapes do not chain: {len(weight[0])} inputs after {len(layer_weight)} outputs")
        bias = [b + sum(w * float(lb) for w, lb in zip(row, layer_bias)) for row, b in zip(weight, bias)]
        columns = len(layer_weight[0])
        weight = [
            [sum(row[k] * layer_weight[k][j] for k in range(len(row))) for j in range(columns)]
            for row in weight
        ]
    return weight, bias


def write_safetensors(path, tensors):
    """tensors: name -> (shape, flat floats); written as little-endian float32."""
    header, body, offset = {"__metadata__": {"format": "pt"}}, bytearray(), 0
    for name, (shape, values) in tensors.items():
        data = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        body += data
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        f.write(body)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="sac+logos+ava1-l14-linearMSE.pth (or a state dict as .json)")
    parser.add_argument("target", help="output .safetensors")
    args = parser.parse_args(argv)

    weight, bias = fold(linear_layers(load_state_dict(args.source)))
    if len(weight) != 1 or len(bias) != 1:
        raise SystemExit(f"the folded map has {len(weight)} outputs, expected 1")
    os.makedirs(os.path.dirname(os.path.abspath(args.target)), exist_ok=True)
    write_safetensors(args.target, {"weight": ([1, len(weight[0])], weight[0]), "bias": ([1], bias)})
    print(f"wrote {args.target}: weight 1x{len(weight[0])}, bias {bias[0]:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
