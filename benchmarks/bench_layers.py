"""Per-layer latency of HasteConv against onnxruntime's own Conv, as ratios.

Both sides run in one process, alternating, after warm-up; medians are
reported. Inputs are ReLU'd Gaussians, so how much merges depends only on the
number of hyperplanes; real activations merge more (see the model benchmark).

    python benchmarks/bench_layers.py [--threads 2] [--batch 1] [--hyperplanes 64 14 8] [--cpu-time] [--save]

L=64 merges nothing (every channel keeps its own code): that row is the op's
overhead against onnxruntime's Conv. `--save` writes
benchmarks/results/layers_b<B>_t<T>.json, which docs/results.md includes.

Real layers: each HasteConv node of a rewritten model, alone, on the activations
the original model gives for Fashion-MNIST test images (upscaled to --size),
against onnxruntime's Conv (+ Add + Relu where the node fused them); one thread,
process CPU time, alternating after warm-up; with several op libraries (--libs,
e.g. a build before and after a change) all run in the same process, their
outputs must be bit-identical, and each is also compared with the first:

    python benchmarks/bench_layers.py --real REWRITTEN.onnx --original ORIGINAL.onnx --size 56 \
        --layers 0 3 --libs before.so after.so [--repeats 20]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import haste_onnx
from haste_onnx.op import draw_hyperplanes, patch_size

SHAPES = [(64, 32), (128, 16), (256, 8), (512, 4)]  # ResNet-18 (CIFAR-style) 3x3 layers: channels, size


def _model(channels, size, batch, hyperplanes, tile, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((channels, channels, 3, 3)) / np.sqrt(9 * channels)).astype(np.float32)
    b = rng.standard_normal(channels).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    x_info = helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [batch, channels, size, size])
    y_info = helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [batch, channels, size, size])
    opsets = [helper.make_opsetid("", 17)]
    if hyperplanes:
        ph, pw = patch_size((3, 3), (1, 1), (1, 1), tile)
        inits.append(numpy_helper.from_array(draw_hyperplanes(hyperplanes, ph * pw, 2 / 3, seed), "H"))
        node = helper.make_node("HasteConv", ["X", "W", "B", "H"], ["Y", "S"], domain="haste", pads=[1, 1, 1, 1],
                                kernel_shape=[3, 3], tile=list(tile))
        opsets.append(helper.make_opsetid("haste", 1))
        outputs = [y_info, helper.make_tensor_value_info("S", onnx.TensorProto.INT64, [7])]
    else:
        node = helper.make_node("Conv", ["X", "W", "B"], ["Y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])
        outputs = [y_info]
    graph = helper.make_graph([node], "layer", [x_info], outputs, inits)
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _session(model, threads):
    opts = haste_onnx.session_options(threads=threads)
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def measure(channels, size, batch, hyperplanes, threads, tile=(4, 4), repeats=30, clock=time.perf_counter):
    x = np.maximum(np.random.default_rng(1).standard_normal((batch, channels, size, size)), 0).astype(np.float32)
    dense = _session(_model(channels, size, batch, 0, tile), threads)
    haste = _session(_model(channels, size, batch, hyperplanes, tile), threads)
    stats = haste.run(None, {"X": x})[1]
    for _ in range(3):
        dense.run(None, {"X": x})
        haste.run(None, {"X": x})
    times = {"dense": [], "haste": []}
    for _ in range(repeats):
        for name, sess in (("dense", dense), ("haste", haste)):
            start = clock()
            sess.run(None, {"X": x})
            times[name].append(clock() - start)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    return {"channels": channels, "size": size, "batch": batch, "hyperplanes": hyperplanes, "threads": threads,
            "tile": list(tile), "dense_ms": med["dense"], "haste_ms": med["haste"],
            "speedup": med["dense"] / med["haste"], "mac_cut": 1 - stats[1] / stats[0],
            "mean_merged_fraction": float(stats[5] / stats[6])}


def _fashion_images(size, count):
    """Fashion-MNIST test images as the shared models take them (32x32), upscaled (nearest) to size x size."""
    from haste_onnx.data import load_fashion_mnist, preprocess_fashion_mnist

    x = preprocess_fashion_mnist(load_fashion_mnist("test")[0][:count], (32, 32)).astype(np.float32)
    rep = -(-size // 32)
    return np.ascontiguousarray(np.repeat(np.repeat(x, rep, axis=2), rep, axis=3)[:, :, :size, :size])


def _free_spatial(model):
    for d in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_param = "S"
    del model.graph.value_info[:]
    return model


def _activations(original, names, x):
    m = _free_spatial(onnx.load(original))
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names if n not in have)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))


def _real_layer_models(model, node):
    """The node alone (with a stats output), and Conv (+ Add + Relu) with the same weights."""
    inits = {i.name: i for i in model.graph.initializer}
    z = node.input[4] if len(node.input) > 4 and node.input[4] else None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    arrays = [numpy_helper.from_array(numpy_helper.to_array(inits[name]), new)
              for name, new in zip(node.input[1:4], ["W", "B", "H"])]
    ins = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in (["X", "Z"] if z else ["X"])]
    y = helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)
    stats = helper.make_tensor_value_info("S", onnx.TensorProto.INT64, None)
    hnode = helper.make_node("HasteConv", ["X", "W", "B", "H"] + (["Z"] if z else []), ["Y", "S"], domain="haste",
                             **attrs)
    haste = helper.make_model(helper.make_graph([hnode], "layer", ins, [y, stats], arrays),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("haste", 1)],
                              ir_version=8)
    conv_attrs = {k: v for k, v in attrs.items()
                  if k in ("pads", "strides", "dilations", "kernel_shape", "group", "auto_pad")}
    nodes, last = [helper.make_node("Conv", ["X", "W", "B"], ["C"], **conv_attrs)], "C"
    if z:
        nodes.append(helper.make_node("Add", [last, "Z"], ["A"]))
        last = "A"
    if attrs.get("activation", b"") == b"Relu":
        nodes.append(helper.make_node("Relu", [last], ["R"]))
        last = "R"
    nodes.append(helper.make_node("Identity", [last], ["Y"]))
    dense = helper.make_model(helper.make_graph(nodes, "layer", ins, [y], arrays[:2]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return haste, dense, node.input[0], z


def measure_real(args):
    model = onnx.load(args.real)
    nodes = [n for n in model.graph.node if n.op_type == "HasteConv"]
    chosen = [(i, nodes[i]) for i in (args.layers if args.layers else range(len(nodes)))]
    need = [name for _, n in chosen for name in n.input[:1] + ([n.input[4]] if len(n.input) > 4 and n.input[4] else [])]
    acts = _activations(args.original, need, _fashion_images(args.size, args.batch))
    libs = args.libs or [haste_onnx.get_library_path()]
    print(f"onnxruntime {ort.__version__}, 1 thread, process CPU time, input {args.size}x{args.size}, batch "
          f"{args.batch}, {args.real}; ratios: onnxruntime Conv time / HasteConv time, median [quartiles]")
    for index, node in chosen:
        haste, dense, x, z = _real_layer_models(model, node)
        feeds = {"X": acts[x], **({"Z": acts[z]} if z else {})}

        def session(m, lib=None):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            if lib:
                opts.register_custom_ops_library(lib)
            return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])

        sessions = {"conv": session(dense), **{f"lib{i}": session(haste, lib) for i, lib in enumerate(libs)}}
        first = {k: s.run(None, feeds) for k, s in sessions.items()}
        for k in first:
            if k.startswith("lib") and first[k][0].tobytes() != first["lib0"][0].tobytes():
                raise SystemExit(f"layer {index}: {libs[int(k[3:])]} gives other outputs than {libs[0]}")
        st = first["lib0"][1]
        start = time.process_time()
        sessions["conv"].run(None, feeds)
        inner = args.inner or max(1, int(0.02 / max(time.process_time() - start, 1e-4)))
        for s in sessions.values():
            for _ in range(2):
                s.run(None, feeds)
        times = {k: [] for k in sessions}
        for _ in range(args.repeats):
            for k, s in sessions.items():
                start = time.process_time()
                for _ in range(inner):
                    s.run(None, feeds)
                times[k].append((time.process_time() - start) / inner * 1e3)
        t = {k: np.array(v) for k, v in times.items()}
        shape = acts[x].shape
        line = (f"[{index}] {node.name} C={shape[1]} {shape[2]}x{shape[3]} MACs cut {1 - st[1] / st[0]:.1%}: "
                f"Conv {np.median(t['conv']):.3f} ms")
        for k in sessions:
            if k == "conv":
                continue
            ratio = t["conv"] / t[k]
            q = np.percentile(ratio, [25, 75])
            line += f" | {k} {np.median(t[k]):.3f} ms, {np.median(ratio):.3f} [{q[0]:.3f}, {q[1]:.3f}]"
            if k != "lib0":
                rel = t["lib0"] / t[k]
                q = np.percentile(rel, [25, 75])
                line += f", x{np.median(rel):.3f} [{q[0]:.3f}, {q[1]:.3f}] vs lib0"
        print(line, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--hyperplanes", type=int, nargs="+", default=[64, 14, 8])
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU clock (with --threads 1: robust to a busy machine)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", action="store_true", help="also write benchmarks/results/layers_b<B>_t<T>.json")
    real = parser.add_argument_group("real layers (one thread, process CPU time)")
    real.add_argument("--real", metavar="REWRITTEN", help="a rewritten model: time its HasteConv nodes one by one")
    real.add_argument("--original", metavar="ORIGINAL", help="the model it was rewritten from (gives the activations)")
    real.add_argument("--size", type=int, default=32, help="input height and width (images upscaled)")
    real.add_argument("--layers", type=int, nargs="*", help="indices of HasteConv nodes (default: all)")
    real.add_argument("--libs", nargs="*", help="op libraries to compare (default: the package's)")
    real.add_argument("--repeats", type=int, default=20)
    real.add_argument("--inner", type=int, default=0, help="runs per timing (default: about 20 ms worth)")
    args = parser.parse_args(argv)
    if args.real:
        if not args.original:
            parser.error("--real needs --original")
        return measure_real(args)
    clock = time.process_time if args.cpu_time else time.perf_counter
    rows = [measure(c, s, args.batch, L, args.threads, clock=clock) for c, s in SHAPES for L in args.hyperplanes]
    meta = {"onnxruntime": ort.__version__, "python": sys.version.split()[0], "machine": platform.machine(),
            "clock": "process CPU time" if args.cpu_time else "wall", "threads": args.threads, "batch": args.batch,
            "repeats": 30, "command": "python benchmarks/bench_layers.py " + " ".join(argv or sys.argv[1:])}
    if args.save:
        from pathlib import Path

        out = Path(__file__).resolve().parent / "results" / f"layers_b{args.batch}_t{args.threads}.json"
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, batch {args.batch}")
    ratio = "C'/C"
    print(f"{'C':>4} {'HxW':>5} {'L':>3} {ratio:>6} {'MACs cut':>8} {'Conv ms':>8} {'Haste ms':>8} {'speed-up':>8}")
    for r in rows:
        print(f"{r['channels']:>4} {r['size']:>5} {r['hyperplanes']:>3} {r['mean_merged_fraction']:>6.2f} "
              f"{r['mac_cut']:>8.1%} {r['dense_ms']:>8.3f} {r['haste_ms']:>8.3f} {r['speedup']:>8.2f}")


if __name__ == "__main__":
    main()
