"""ONNX export of a Mask2Hand network: one graph from a mask to the hand, runnable without torch.

The graph (`ExportGraph`) is built from the network's own pieces, so it follows the
network whatever its configuration:

    mask (B,1,S,S) float 0/1, K (B,3,3) intrinsics at the input size S
      -> Mask2HandNet.preliminary   encoder, rotation, hand layer (blend shapes, Rodrigues,
                                    kinematic chain, skinning as plain tensor algebra)
      -> exact silhouette at S      mask2hand.render.exact with dense rows (NonZero, Gather,
                                    ScatterElements, CumSum): the same pixels as
                                    render.rasterize_silhouette
      -> Mask2HandNet.refine        RefineNet on (mask, silhouette), joints of the refined mesh
    outputs: vertices (B,V,3), joints (B,21,3) meters (final stage), global_orient (B,3),
    transl (B,3), betas (B,10), pose (B,45) as HandModel.forward(hand_pose=...) takes it,
    pose_pcs (B,k) (PCA networks only), silhouette (B,S,S) of the preliminary hand.

It is the network's inference path `forward(mask, K, exact_silhouette=True)` (RefineNet fed
the exact silhouette rather than the soft one it was trained with; they differ only
within about a pixel of the boundary). The batch axis is dynamic.

Everything the runtime needs travels in the model's metadata_props (`build_metadata`,
keys prefixed "mask2hand.", JSON values): the hand model's identity, faces, input size,
crop margin, the network config and where the weights came from.
`mask2hand.inference.onnx_runner.OnnxRunner` runs the file with numpy, onnxruntime and Pillow only.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mask2hand.errors import Mask2HandError
from mask2hand.hand.params import HandParams
from mask2hand.utils.files import atomic_path, file_sha256
from mask2hand.utils.optional import missing_message
from mask2hand.inference.onnx_runner import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, METADATA_PREFIX
from mask2hand.inference.runner import layer_pose
from mask2hand.nn.locator import code_to_window
from mask2hand.render import exact

DEFAULT_OPSET = 17
INPUT_NAMES = ("mask", "K")


def output_names(pose_space: str, located: bool = False) -> tuple[str, ...]:
    """The graph's outputs, in order (pose_pcs only for a PCA network, hand_window only for one
    with a locator)."""
    pcs = ("pose_pcs",) if pose_space == "pca" else ()
    window = ("hand_window",) if located else ()
    return ("vertices", "joints", "global_orient", "transl", "betas", "pose", *pcs, "silhouette", *window)


class ExportGraph(nn.Module):
    """The exported computation: (mask (B,1,S,S), K (B,3,3)) -> the tuple named by `output_names`.

    Calls the network's `preliminary` and `refine`; renders the preliminary mesh with the
    traceable exact rasterizer in float64 (as rasterize_silhouette does).
    """

    def __init__(self, network):
        super().__init__()
        self.network = network
        faces = network.hand.faces.detach().cpu().numpy()
        table = exact.edge_table(faces)
        device = network.hand.faces.device
        self.register_buffer("faces", torch.as_tensor(faces, dtype=torch.int64, device=device), persistent=False)
        self.register_buffer("edges", torch.as_tensor(table.edges, device=device), persistent=False)
        self.register_buffer("edge_faces", torch.as_tensor(table.edge_faces, device=device), persistent=False)
        # int32 side arithmetic: ONNX Runtime has no int8 Mul / ReduceSum kernels
        self.register_buffer("edge_dirs", torch.as_tensor(table.edge_dirs, dtype=torch.int32, device=device),
                             persistent=False)

    def forward(self, mask: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, ...]:
        net = self.network
        size = net.config.input_size
        side = mask.shape[-1]
        mask, K, code = net.locate(mask, K)
        hand = net.preliminary(mask, K)
        silhouette = exact.silhouette(hand.vertices.double(), K.double(), self.faces, self.edges, self.edge_faces,
                                      self.edge_dirs, (size, size), dense_rows=True).to(mask.dtype)
        vertices, joints = hand.vertices, hand.joints
        if net.refine_net is not None:
            vertices, joints = net.refine(mask, silhouette, hand.vertices)
        params = hand.params
        pcs = (params.pose_pcs,) if net.config.pose_space == "pca" else ()
        pose = layer_pose(net.hand, params)
        window = () if code is None else (code_to_window(code, side),)
        return (vertices, joints, params.global_orient, params.transl, params.betas, pose, *pcs, silhouette, *window)


class _ExportableAdaptiveAvgPool2d(nn.Module):
    """nn.AdaptiveAvgPool2d that exports for any sizes: torch.onnx only exports output sizes
    that divide the input size (RefineNet's compact head pools 2x2 -> 4x4 at S = 64 and
    7x7 -> 4x4 at S = 224), so other sizes become the equivalent averaging matrices,
    P_h x P_w^T with P[i, floor(i n / o) : ceil((i + 1) n / o)] = 1 / window length."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    @staticmethod
    def _matrix(n: int, o: int, like: torch.Tensor) -> torch.Tensor:
        matrix = np.zeros((o, n))
        for i in range(o):
            start, end = (i * n) // o, -((-(i + 1) * n) // o)
            matrix[i, start:end] = 1.0 / (end - start)
        return torch.as_tensor(matrix, dtype=like.dtype, device=like.device)  # a constant of the graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = (int(n) for n in x.shape[-2:])  # constants: only the batch axis is dynamic
        out_h, out_w = nn.modules.utils._pair(self.output_size)
        out_h, out_w = out_h or height, out_w or width
        if height % out_h == 0 and width % out_w == 0:
            return nn.functional.adaptive_avg_pool2d(x, (out_h, out_w))
        return self._matrix(height, out_h, x) @ x @ self._matrix(width, out_w, x).t()


def _exportable_copy(network):
    """An eval-mode copy of the network with every AdaptiveAvgPool2d made exportable."""
    network = copy.deepcopy(network).eval()
    for module in list(network.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(module, name, _ExportableAdaptiveAvgPool2d(child.output_size))
    return network


@dataclass
class OnnxExport:
    """What `export_onnx` wrote: path, size_bytes, opset, the metadata (decoded JSON values) and
    the network that was exported (loaded from the file when a path was given)."""

    path: Path
    size_bytes: int
    opset: int
    metadata: dict[str, Any]
    network: Any


def example_inputs(input_size: int, batch: int = 2, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A (B,1,S,S) mask batch (a filled ellipse) and K (B,3,3) at S (focal 2.2 S, centered)."""
    from mask2hand.image.camera import Camera
    from mask2hand.inference.cameras import DEFAULT_FOCAL_FACTOR

    rows, cols = np.mgrid[:input_size, :input_size] + 0.5
    center = input_size / 2
    blob = (((cols - center) / (0.2 * input_size)) ** 2 + ((rows - center) / (0.35 * input_size)) ** 2) <= 1
    mask = torch.as_tensor(blob, dtype=dtype, device=device).expand(batch, 1, input_size, input_size).contiguous()
    K = Camera.centered((input_size, input_size), DEFAULT_FOCAL_FACTOR * input_size).K
    return mask, torch.as_tensor(K, dtype=dtype, device=device).expand(batch, 3, 3).contiguous()


def _load(source, hand_model: str | None, mano_path: str | os.PathLike | None) -> tuple[Any, dict[str, Any]]:
    """(network, source identity) of a Mask2HandNet, a checkpoint / weights file path, or None
    (the shipped weights)."""
    if source is None or isinstance(source, (str, os.PathLike)):
        from mask2hand.nn.checkpoint import load_network
        from mask2hand.nn.pretrained import DEFAULT_MODEL, SHIPPED_MODELS, resolve_weights

        file = resolve_weights(source)
        network, payload = load_network(file, hand_model=hand_model, mano_path=mano_path, device="cpu")
        name = DEFAULT_MODEL if source is None else str(source)
        return network, {"weights": f"{name} (shipped)" if name in SHIPPED_MODELS else str(file),
                         "sha256": file_sha256(file), "format": payload.get("format")}
    if not hasattr(source, "preliminary") or not hasattr(source, "refine"):
        raise Mask2HandError(f"export_onnx needs a Mask2HandNet or a checkpoint path, got {type(source).__name__}")
    return source, {"weights": "<in-memory network>", "sha256": None, "format": None}


def build_metadata(network, source: dict[str, Any]) -> dict[str, Any]:
    """The metadata an export stores (values before JSON encoding)."""
    from mask2hand.version import __version__
    from mask2hand.utils.dataclass_config import to_dict

    config = network.config
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "mask2hand_version": __version__,
        "hand": dict(network.hand.identity),
        "flat_hand_mean": bool(network.hand.flat_hand_mean),
        "input_size": int(config.model_input_size),
        "input_crop": getattr(config, "input_crop", None),
        "network": to_dict(config),
        "faces": network.hand.faces.detach().cpu().numpy().astype(int).tolist(),
        "source": source,
        "outputs": list(output_names(config.pose_space, config.locator_input is not None)),
    }


def export_onnx(source, out_path: str | os.PathLike, opset: int = DEFAULT_OPSET, hand_model: str | None = None,
                mano_path: str | os.PathLike | None = None) -> OnnxExport:
    """Export a network to one ONNX file.

    source: a Mask2HandNet, a checkpoint / weights file, or None for the shipped weights;
    hand_model / mano_path: as in mask2hand.nn.checkpoint.load_network (files only). The file
    is written atomically (complete or absent). A copy of the network is exported (in eval
    mode): the network itself is left as it was. Returns an OnnxExport.

    The graph holds the hand model's arrays as constants: an export of a MANO network
    contains MANO, whose license forbids redistributing it (see `mano_notice`).
    """
    try:
        import onnx
    except ImportError:
        raise Mask2HandError(missing_message("onnx", "exporting to ONNX")) from None
    network, identity = _load(source, hand_model, mano_path)
    reference = next(network.parameters())
    graph = ExportGraph(_exportable_copy(network)).eval()
    names = output_names(network.config.pose_space, network.config.locator_input is not None)
    dynamic = {name: {0: "batch"} for name in (*INPUT_NAMES, *names)}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on Python-side shape checks and on the fixed spatial size (the
        # adaptive pooling matrices): they hold for any batch
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(graph, example_inputs(network.config.model_input_size, device=reference.device,
                                                dtype=reference.dtype),
                          buffer, dynamo=False, opset_version=opset, input_names=list(INPUT_NAMES),
                          output_names=list(names), dynamic_axes=dynamic, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    metadata = build_metadata(network, identity)
    model.producer_name = "mask2hand"
    model.doc_string = ("Mask2Hand: binary hand mask (B,1,S,S) and intrinsics K (B,3,3) at S -> 3D hand in "
                        "camera space, meters. See mask2hand.export.onnx.")
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, json.dumps(value)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        onnx.save(model, str(tmp))
    return OnnxExport(path=out_path, size_bytes=out_path.stat().st_size, opset=opset, metadata=metadata,
                      network=network)


def mano_notice(metadata: dict[str, Any]) -> str | None:
    """What a user must know before sharing an export of a MANO network (None for the open hand)."""
    if metadata["hand"]["name"] != "mano":
        return None
    return ("this ONNX file contains the MANO model's arrays (the hand layer is part of the graph): MANO's license "
            "forbids redistributing it, so keep the file to yourself")


# ---------------------------------------------------------------------- parity check

@dataclass
class ParityReport:
    """PyTorch vs onnxruntime on the same masks: max absolute differences in meters of the final
    vertices and joints, of the hand parameters (radians / meters / coefficients), and the
    fraction of silhouette pixels that differ (count masks)."""

    count: int
    max_vertex_diff_m: float
    max_joint_diff_m: float
    max_param_diff: float
    silhouette_pixel_mismatch: float

    def passes(self, tolerance_m: float = 1e-4) -> bool:
        return max(self.max_vertex_diff_m, self.max_joint_diff_m) <= tolerance_m


def synthetic_check_inputs(hand, count: int, input_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Masks (N,S,S) float32 0/1 and K (N,3,3) float32 of random plausible hands: finger poses
    from the open-hand pose prior, random orientations, the hand centered at a depth where it
    spans about 60% of the image (focal 2.2 S); rendered with the exact rasterizer."""
    from mask2hand.image.camera import Camera
    from mask2hand.inference.cameras import DEFAULT_FOCAL_FACTOR
    from mask2hand.hand.prior import sample_pose_prior

    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(count, 3))
    orient = axis / np.linalg.norm(axis, axis=1, keepdims=True) * rng.uniform(0, np.pi, size=(count, 1))
    pose = sample_pose_prior(count, rng)
    device = hand.v_template.device

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float64, device=device)

    with torch.no_grad():
        absolute = HandParams(global_orient=tensor(orient), transl=tensor(np.zeros((count, 3))),
                              betas=tensor(rng.normal(0.0, 0.8, size=(count, 10))), pose=tensor(pose),
                              flat_hand_mean=True)
        out = hand(**absolute.layer_inputs(hand))
    vertices = out.vertices.cpu().numpy()
    focal = DEFAULT_FOCAL_FACTOR * input_size
    center = 0.5 * (vertices.min(1) + vertices.max(1))
    extent = (vertices.max(1) - vertices.min(1))[:, :2].max(1)
    depth = focal * extent / (0.6 * input_size) + extent  # the box's near face spans about 60%
    vertices = vertices - center[:, None] + np.stack([np.zeros(count), np.zeros(count), depth], 1)[:, None]
    K = np.repeat(Camera.centered((input_size, input_size), focal).K[None], count, 0)
    masks = exact.rasterize_silhouette(vertices, hand.faces.cpu().numpy(), K, (input_size, input_size))
    return masks.astype(np.float32), K.astype(np.float32)


def check_parity(network, onnx_path: str | os.PathLike, count: int = 100, seed: int = 0, batch_size: int = 25,
                 threads: int | None = None) -> ParityReport:
    """Run `count` synthetic masks through the network (PyTorch, exact silhouette) and through
    the exported file (onnxruntime) and compare."""
    from mask2hand.inference.onnx_runner import OnnxRunner

    runner = OnnxRunner(onnx_path, threads=threads)
    size = runner.input_size
    masks, K = synthetic_check_inputs(network.hand, count, size, seed)
    worst = {"vertices": 0.0, "joints": 0.0, "params": 0.0}
    mismatch = pixels = 0
    was_training = network.training
    network.eval()
    try:
        for start in range(0, count, batch_size):
            m, k = masks[start:start + batch_size], K[start:start + batch_size]
            ours = runner.run_graph(m, k)
            with torch.inference_mode():
                theirs = network(torch.as_tensor(m), torch.as_tensor(k), exact_silhouette=True)
            reference = torch_outputs(network, theirs)
            worst["vertices"] = max(worst["vertices"], _max_diff(ours["vertices"], reference["vertices"]))
            worst["joints"] = max(worst["joints"], _max_diff(ours["joints"], reference["joints"]))
            for name in ("global_orient", "transl", "betas", "pose", "pose_pcs"):
                if name in ours:
                    worst["params"] = max(worst["params"], _max_diff(ours[name], reference[name]))
            mismatch += int((ours["silhouette"] != reference["silhouette"]).sum())
            pixels += reference["silhouette"].size
    finally:
        network.train(was_training)
    return ParityReport(count=count, max_vertex_diff_m=worst["vertices"], max_joint_diff_m=worst["joints"],
                        max_param_diff=worst["params"], silhouette_pixel_mismatch=mismatch / max(pixels, 1))


def torch_outputs(network, output) -> dict[str, np.ndarray]:
    """A Mask2HandOutput as the graph's named outputs (numpy float32)."""
    params = output.params
    values = {"vertices": output.final_vertices, "joints": output.final_joints, "global_orient": params.global_orient,
              "transl": params.transl, "betas": params.betas, "pose": layer_pose(network.hand, params),
              "pose_pcs": params.pose_pcs, "silhouette": output.silhouette}
    return {k: v.detach().float().cpu().numpy() for k, v in values.items() if v is not None}


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())
