#!/usr/bin/env python3
"""Regenerate `model.onnx` for all-MiniLM-L6-v2 from the official weights.

The graph is written by hand with the `onnx` package (no torch, no model hub):
a BERT encoder (6 layers, 12 heads, hidden 384, exact-erf GELU, eps 1e-12)
whose every initializer is an *external* tensor pointing at a byte range of the
unmodified `model.safetensors`. The repository therefore ships ~30 KB of graph
instead of 90 MB of weights, and the weights are checked by sha256.

PyTorch stores a Linear weight as [out, in]; the graph multiplies by its
transpose, which ONNX Runtime folds into a constant when the session is built.

Usage (maintainers; `scripts/setup` never runs this):
    python3 models/all-MiniLM-L6-v2/build_graph.py WEIGHTS_DIR [OUT.onnx]
WEIGHTS_DIR holds `model.safetensors` and `config.json`. The output is
byte-for-byte reproducible; `manifest.json` records its sha256.
"""

import json
import struct
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

OPSET = 17
WEIGHTS_FILE = "model.safetensors"
# HF BertModel fills masked attention scores with the most negative float32.
MASK_FILL = -3.4028234663852886e38


def safetensors_index(path):
    """Name -> (dtype, shape, absolute byte offset, byte length)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    base = 8 + header_len
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = (meta["dtype"], meta["shape"], base + start, end - start)
    return out


class Builder:
    def __init__(self, index):
        self.index = index
        self.nodes = []
        self.inits = []
        self.used = set()
        self.counter = 0

    def fresh(self, hint):
        self.counter += 1
        return f"{hint}_{self.counter}"

    def weight(self, name):
        """An external initializer referencing the safetensors byte range."""
        if name not in self.used:
            dtype, shape, offset, length = self.index[name]
            assert dtype == "F32", f"{name}: expected F32, found {dtype}"
            t = TensorProto()
            t.name = name
            t.data_type = TensorProto.FLOAT
            t.dims.extend(shape)
            t.data_location = TensorProto.EXTERNAL
            for key, value in (
                ("location", WEIGHTS_FILE),
                ("offset", str(offset)),
                ("length", str(length)),
            ):
                entry = t.external_data.add()
                entry.key = key
                entry.value = value
            self.inits.append(t)
            self.used.add(name)
        return name

    def const(self, hint, values, dtype=TensorProto.INT64, dims=None):
        name = self.fresh(hint)
        dims = [len(values)] if dims is None else dims
        self.inits.append(helper.make_tensor(name, dtype, dims, values))
        return name

    def op(self, op_type, inputs, hint, **attrs):
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x, prefix):
        w_t = self.op("Transpose", [self.weight(prefix + ".weight")], prefix + ".wT", perm=[1, 0])
        y = self.op("MatMul", [x, w_t], prefix + ".mm")
        return self.op("Add", [y, self.weight(prefix + ".bias")], prefix + ".out")

    def layer_norm(self, x, prefix, eps):
        return self.op(
            "LayerNormalization",
            [x, self.weight(prefix + ".weight"), self.weight(prefix + ".bias")],
            prefix + ".ln",
            axis=-1,
            epsilon=eps,
        )


def build(weights_dir):
    cfg = json.loads((weights_dir / "config.json").read_text())
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = cfg["layer_norm_eps"]
    b = Builder(safetensors_index(weights_dir / WEIGHTS_FILE))

    # Embeddings: word + absolute position (0..S-1) + token type, then LayerNorm.
    word = b.op("Gather", [b.weight("embeddings.word_embeddings.weight"), "input_ids"], "word", axis=0)
    shape = b.op("Shape", ["input_ids"], "ids_shape")
    seq = b.op("Gather", [shape, b.const("one", [1], dims=[])], "seq_len", axis=0)
    zero = b.const("zero", [0], dims=[])
    step = b.const("step", [1], dims=[])
    positions = b.op("Range", [zero, seq, step], "positions")
    pos = b.op("Gather", [b.weight("embeddings.position_embeddings.weight"), positions], "pos", axis=0)
    typ = b.op(
        "Gather", [b.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"], "type", axis=0
    )
    x = b.op("Add", [b.op("Add", [word, pos], "wp"), typ], "emb_sum")
    x = b.layer_norm(x, "embeddings.LayerNorm", eps)

    # Additive attention mask [B, 1, 1, S]: 0 where attended, MASK_FILL where padded.
    maskf = b.op("Cast", ["attention_mask"], "maskf", to=TensorProto.FLOAT)
    one_f = b.const("one_f", [1.0], TensorProto.FLOAT, dims=[])
    fill = b.const("fill", [MASK_FILL], TensorProto.FLOAT, dims=[])
    inverted = b.op("Sub", [one_f, maskf], "inv_mask")
    additive = b.op("Mul", [inverted, fill], "add_mask")
    additive = b.op("Unsqueeze", [additive, b.const("axes", [1, 2])], "mask4")

    split_shape = b.const("split_shape", [0, 0, heads, head_dim])
    merge_shape = b.const("merge_shape", [0, 0, hidden])
    scale = b.const("scale", [1.0 / head_dim**0.5], TensorProto.FLOAT, dims=[])
    sqrt2 = b.const("sqrt2", [2.0**0.5], TensorProto.FLOAT, dims=[])
    half = b.const("half", [0.5], TensorProto.FLOAT, dims=[])

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q = b.op("Reshape", [b.linear(x, p + ".attention.self.query"), split_shape], p + ".q4")
        k = b.op("Reshape", [b.linear(x, p + ".attention.self.key"), split_shape], p + ".k4")
        v = b.op("Reshape", [b.linear(x, p + ".attention.self.value"), split_shape], p + ".v4")
        q = b.op("Transpose", [q], p + ".qT", perm=[0, 2, 1, 3])
        k = b.op("Transpose", [k], p + ".kT", perm=[0, 2, 3, 1])
        v = b.op("Transpose", [v], p + ".vT", perm=[0, 2, 1, 3])
        scores = b.op("Mul", [b.op("MatMul", [q, k], p + ".qk"), scale], p + ".scaled")
        scores = b.op("Add", [scores, additive], p + ".masked")
        probs = b.op("Softmax", [scores], p + ".probs", axis=-1)
        ctx = b.op("MatMul", [probs, v], p + ".ctx")
        ctx = b.op("Transpose", [ctx], p + ".ctxT", perm=[0, 2, 1, 3])
        ctx = b.op("Reshape", [ctx, merge_shape], p + ".ctx3")
        attn = b.linear(ctx, p + ".attention.output.dense")
        x = b.layer_norm(b.op("Add", [attn, x], p + ".res1"), p + ".attention.output.LayerNorm", eps)

        h = b.linear(x, p + ".intermediate.dense")
        # Exact GELU: 0.5 * h * (1 + erf(h / sqrt(2))); ORT fuses this pattern.
        erf = b.op("Erf", [b.op("Div", [h, sqrt2], p + ".hdiv")], p + ".erf")
        gelu = b.op("Mul", [b.op("Mul", [h, b.op("Add", [erf, one_f], p + ".erf1")], p + ".hg"), half], p + ".gelu")
        out = b.linear(gelu, p + ".output.dense")
        x = b.layer_norm(b.op("Add", [out, x], p + ".res2"), p + ".output.LayerNorm", eps)

    b.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))

    ids = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ids) for n in ("input_ids", "attention_mask", "token_type_ids")]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])
    graph = helper.make_graph(b.nodes, "all-MiniLM-L6-v2", inputs, [output], initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="papermap build_graph.py")
    model.ir_version = 8
    # check_model would try to open the external weights relative to the cwd;
    # the real check is the reference-vector test run through ONNX Runtime.
    return model


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    weights_dir = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) == 3 else Path(__file__).with_name("model.onnx")
    model = build(weights_dir)
    out.write_bytes(model.SerializeToString(deterministic=True))
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(model.graph.node)} nodes)")


if __name__ == "__main__":
    main()
