"""Real-hands sets and their scores: the committed Sign Language Digits set (person-disjoint shares,
nothing from the reserved photos), the 2-D scores, and the tool's student split."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from mask2hand import Mask2HandError
from mask2hand.data.real_hands import keypoints_of, read_real_hands
from mask2hand.evaluation.real_hands import cut_at_wrist, joint_errors_2d, palm_clearly_facing, palm_toward_camera
from mask2hand.render.exact import mask_iou

REPO = Path(__file__).resolve().parents[1]
SLD = REPO / "datasets" / "real-hands" / "sign-language-digits"
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(REPO / "tools"))


def test_the_committed_set_is_split_by_person_and_holds_no_reserved_photo():
    hands = read_real_hands(SLD, usable_only=False)
    assert len(hands) > 1000
    people = {share: {h.person for h in hands if h.share == share} for share in ("train", "validation", "test")}
    assert not people["train"] & people["test"] and not people["train"] & people["validation"]
    assert not people["validation"] & people["test"]
    assert len(people["test"]) >= 20
    assert all(int(re.fullmatch(r"IMG_(\d+)", h.ident).group(1)) < 4900 for h in hands)
    usable = [h for h in hands if h.problem is None]
    assert len(usable) >= 0.9 * len(hands)
    for hand in usable[:50]:
        mask = hand.read_mask()
        assert mask.shape == hand.image_size and 0.03 <= mask.mean() <= 0.85
        assert hand.landmarks.shape == (21, 2) and hand.world_landmarks.shape == (21, 3)
    assert {h.share for h in read_real_hands(SLD, share="test")} == {"test"}


def test_a_folder_that_is_not_a_set_is_one_clear_error(tmp_path):
    with pytest.raises(Mask2HandError, match="no labels.json"):
        read_real_hands(tmp_path)
    (tmp_path / "labels.json").write_text("[" * 100000)
    with pytest.raises(Mask2HandError, match="not valid JSON"):
        read_real_hands(tmp_path)
    (tmp_path / "labels.json").write_text(json.dumps({"format": "mask2hand-real-hands/1", "records": [
        {"id": "a", "mask": "../../etc/passwd", "student": 0, "share": "test", "image_size": [4, 4],
         "reference": None}]}))
    with pytest.raises(Mask2HandError, match="record 0 is malformed"):
        read_real_hands(tmp_path)
    with pytest.raises(Mask2HandError, match="share must be one of"):
        read_real_hands(SLD, share="everything")


def example(name: str) -> dict:
    return json.loads((EXAMPLES / "ground_truth.json").read_text())["examples"][name]


def test_palm_toward_camera_reads_the_examples_whose_facing_is_known():
    assert palm_toward_camera(np.array(example("open_palm.png")["joints_2d"]), "right")
    assert not palm_toward_camera(np.array(example("spread_back.png")["joints_2d"]), "right")
    mirrored = np.array(example("open_palm.png")["joints_2d"]) * [-1, 1]
    assert not palm_toward_camera(mirrored, "right") and palm_toward_camera(mirrored, "left")
    joints = np.array(example("open_palm.png")["joints"])
    assert palm_clearly_facing(joints)
    edge_on = joints[:, [2, 1, 0]]  # the palm plane turned to contain the viewing axis
    assert not palm_clearly_facing(edge_on)


def test_the_2d_scores_are_relative_to_the_hand_size():
    landmarks = np.array(example("victory.png")["joints_2d"])
    off = landmarks + [3.0, 4.0]  # every joint 5 px off
    errors = joint_errors_2d(off, landmarks)
    assert errors.mean_px == pytest.approx(5.0)
    size = np.linalg.norm(landmarks.max(0) - landmarks.min(0))
    assert errors.mean_fraction == pytest.approx(5.0 / size)
    assert errors.pck == 1.0 and joint_errors_2d(landmarks + [0.2 * size, 0], landmarks).pck == 0.0
    doubled = joint_errors_2d(2 * off, 2 * landmarks)
    assert doubled.mean_fraction == pytest.approx(errors.mean_fraction)


def test_cutting_at_the_wrist_keeps_the_fingers_side():
    landmarks = np.zeros((21, 2))
    landmarks[0] = [50, 60]   # wrist
    landmarks[9] = [50, 20]   # middle knuckle above it
    mask = np.ones((100, 100), bool)
    cut = cut_at_wrist(mask, landmarks)
    assert cut[:60].all() and not cut[61:].any()
    assert float(mask_iou(cut[None], mask[None])[0]) == pytest.approx(0.6)


def test_keypoints_of_names_each_mask_and_its_21_points():
    hands = read_real_hands(SLD, share="validation")
    points = keypoints_of(hands)
    assert len(points) == len(hands)
    first = points[hands[0].mask_path.name]
    assert len(first) == 21 and first[0][:2] == list(hands[0].landmarks[0]) and first[0][2] == 1.0


def test_the_tool_starts_a_student_where_the_digit_does_not_increase():
    from make_real_hands import assign_students, split_students

    digits = [0, 1, 2, 3, 0, 1, 1, 2, 0, 0, 5, 9, 3]
    photos = [(i, d, Path(f"{d}/IMG_{i}.JPG")) for i, d in enumerate(digits)]
    assert assign_students(photos) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 3, 3, 3, 4]
    shares = split_students(50, seed=1)
    counts = {share: sum(1 for s in shares.values() if s == share) for share in ("train", "validation", "test")}
    assert counts == {"train": 35, "validation": 5, "test": 10}
    assert split_students(50, seed=1) == shares
