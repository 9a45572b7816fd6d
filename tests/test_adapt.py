"""`mask2hand adapt`: a few dozen unlabelled masks, a few steps: the weights load, the held-out IoU
rises, a resumed run continues; bad inputs are reported and left out; the objective's terms."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask2hand import Mask2HandError
from mask2hand.cli import main as cli_main
from mask2hand.losses.self_supervised import AdaptWeights, adapt_objective, mask_error

sys.path.insert(0, str(Path(__file__).parent))
from tiny_model import write_tiny_weights  # noqa: E402


def test_the_mask_error_weighs_uncovered_pixels_less():
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:6, 2:6] = 1  # 16 pixels
    outside = mask.clone()
    outside[0, 0, :] = 1  # 8 hand pixels off the mask
    uncovered = mask.clone()
    uncovered[0, 2, 2:6] = 0  # 4 mask pixels left uncovered
    assert mask_error(mask, mask, 0.3) == 0
    np.testing.assert_allclose(mask_error(outside, mask, 0.3), 1 - 16 / (16 + 8))
    np.testing.assert_allclose(mask_error(uncovered, mask, 0.3), 1 - 12 / (12 + 0.3 * 4), rtol=1e-6)
    # nothing rendered is the worst answer, not a cheap one (an area-normalised error gave it 0.3)
    np.testing.assert_allclose(mask_error(torch.zeros_like(mask), mask, 0.3), 1.0)
    assert mask_error(uncovered, mask, 0.3) < mask_error(torch.zeros_like(mask), mask, 0.3)
    with pytest.raises(Mask2HandError, match="uncovered"):
        AdaptWeights(uncovered=2.0)


def test_the_objective_pulls_the_mesh_onto_the_mask_and_toward_the_teacher():
    from mask2hand.nn import Mask2HandNet, NetConfig

    torch.manual_seed(0)
    net = Mask2HandNet(NetConfig(input_size=32, num_pose_pcs=6, backbone_width=0.25))
    mask = torch.zeros(2, 32, 32)
    mask[0, 6:28, 10:22] = 1
    mask[1, 4:24, 9:25] = 1  # two different masks: the batch statistics of the 1 x 1 last stage are not degenerate
    K = torch.tensor([[60.0, 0, 16], [0, 60.0, 16], [0, 0, 1]]).expand(2, 3, 3)
    output = net(mask, K)
    with torch.no_grad():
        teacher = net(mask, K)
    terms = adapt_objective(net, output, AdaptWeights(contour=1e-4), teacher)
    assert {"silhouette", "contour", "limits", "shape", "teacher"} <= set(terms.as_dict())
    assert float(terms.teacher.detach()) == pytest.approx(0.0, abs=1e-4)  # the same network: no disagreement
    terms.total.backward()
    assert net.encoder.backbone.conv1.weight.grad.abs().sum() > 0
    with pytest.raises(Mask2HandError, match="teacher's answer"):
        adapt_objective(net, net(mask, K), AdaptWeights())


def hand_masks(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Masks of the open hand in natural views at 224 x 224, as PNG files (a 'sensor's' masks)."""
    from mask2hand.data.dataset import MaskDataset
    from mask2hand.data.synthetic import NaturalCorpus, generate_natural

    data = generate_natural(folder / "source", seed=seed, corpus=replace(NaturalCorpus(), train=count, val=0, test=0))
    dataset = MaskDataset(data, split="train", distance_field=False)
    paths = []
    for i in range(count):
        path = folder / f"mask_{i:03d}.png"
        Image.fromarray((dataset[i].mask.numpy() > 0.5).astype(np.uint8) * 255).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def adapted_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    masks = hand_masks(root / "sensor", 40)
    (root / "sensor" / "broken.png").write_bytes(b"not a png")
    weights = write_tiny_weights(root / "start.pt", num_pose_pcs=6, backbone_width=0.25, input_crop=1.25)
    run = root / "run"
    common = ["--out", str(run), "--focal", "500", "--synthetic", "64", "--batch-size", "8", "--lr", "1e-3",
              "--quiet"]
    code = cli_main(["adapt", str(root / "sensor"), "--checkpoint", str(weights), "--epochs", "2", *common])
    return root, run, weights, code, masks


@pytest.mark.slow
def test_adapt_writes_weights_that_load_and_raises_the_held_out_iou(adapted_run, capsys):
    from mask2hand import Mask2Hand

    root, run, weights, code, masks = adapted_run
    assert code == 2  # the broken file was reported and left out; the rest adapted
    report = json.loads((run / "held_out.json").read_text())
    assert report["held_out_masks"] == 4
    assert report["after"]["miou"] > report["before"]["miou"]
    model = Mask2Hand.from_pretrained(run / "adapted.pt", device="cpu")
    prediction = model.predict(str(masks[0]), focal=500.0)
    assert prediction.joints.shape == (21, 3)
    for name in ("config.yaml", "epochs.csv", "summary.json", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    header = (run / "epochs.csv").read_text().splitlines()[0].split(",")
    assert "train_silhouette" in header and "train_teacher" in header and "val_miou" in header
    card = json.loads((run / "masks" / "card.json").read_text())
    assert card["counts"] == {"train": 36, "held_out": 4} and len(card["sources"]) == 40


@pytest.mark.slow
def test_a_resumed_adaptation_continues(adapted_run):
    root, run, weights, code, masks = adapted_run
    steps_before = json.loads((run / "summary.json").read_text())["steps_done"]
    config = (run / "config.yaml").read_text().replace("epochs: 2", "epochs: 3")
    (run / "config.yaml").write_text(config)
    assert cli_main(["adapt", "--out", str(run), "--resume", "--quiet"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps_done"] > steps_before
    assert cli_main(["adapt", str(masks[0]), "--out", str(run), "--checkpoint", str(weights)]) == 2  # not over it


def test_too_few_masks_is_one_clear_line(tmp_path, capsys):
    weights = write_tiny_weights(tmp_path / "start.pt", input_crop=1.25)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 25:35] = 255
    Image.fromarray(mask).save(tmp_path / "one.png")
    assert cli_main(["adapt", str(tmp_path / "one.png"), "--out", str(tmp_path / "run"), "--checkpoint",
                     str(weights)]) == 2
    assert "adapting needs at least 2" in capsys.readouterr().err


@pytest.mark.slow
def test_pseudo_labels_keep_only_confident_fits_and_join_the_mix(tmp_path, capsys):
    from mask2hand.data.dataset import MaskDataset
    from mask2hand.train.config import load_config

    masks = hand_masks(tmp_path / "sensor", 24, seed=3)
    weights = write_tiny_weights(tmp_path / "start.pt", num_pose_pcs=6, backbone_width=0.25, input_crop=1.25)
    run = tmp_path / "run"
    code = cli_main(["adapt", str(tmp_path / "sensor"), "--out", str(run), "--checkpoint", str(weights), "--focal",
                     "500", "--synthetic", "0", "--pseudo-labels", "12", "--pseudo-min-iou", "0.3", "--epochs", "1",
                     "--batch-size", "8", "--quiet"])
    assert code == 0
    report = json.loads((run / "pseudo_labels.json").read_text())
    assert report["fitted"] == 12 and 0 < report["kept"] <= 12
    assert report["kept_iou"] >= 0.3
    labelled = MaskDataset(run / "pseudo-labels", split="train", distance_field=False)
    assert labelled.labelled and len(labelled) == report["kept"]
    sample = labelled[0]
    assert sample.joints.shape == (21, 3) and torch.isfinite(sample.joints).all()
    assert 0.05 < float(sample.joints[:, 2].mean()) < 5.0  # in front of the camera, in meters
    # each pseudo-labelled mask is the user's training mask it names, pixel for pixel
    from mask2hand.data.storage import StoredDataset

    users, pseudo = StoredDataset(run / "masks"), StoredDataset(run / "pseudo-labels")
    user_sources = np.asarray(users.arrays["source_index"])
    held_out = set(user_sources[users.split_indices("held_out")].tolist())
    for i, source in enumerate(np.asarray(pseudo.arrays["source_index"])):
        assert int(source) not in held_out
        row = int(np.flatnonzero(user_sources == source)[0])
        np.testing.assert_array_equal(pseudo.masks(np.array([i])), users.masks(np.array([row])))
    recipe = load_config(run / "config.yaml")
    assert recipe.data.train == {f"{run / 'masks'}:train": 0.75, f"{run / 'pseudo-labels'}:train": 0.25}


@pytest.mark.slow
def test_no_confident_fit_trains_without_pseudo_labels(tmp_path, capsys):
    hand_masks(tmp_path / "sensor", 12, seed=4)
    weights = write_tiny_weights(tmp_path / "start.pt", num_pose_pcs=6, backbone_width=0.25, input_crop=1.25)
    run = tmp_path / "run"
    code = cli_main(["adapt", str(tmp_path / "sensor"), "--out", str(run), "--checkpoint", str(weights), "--focal",
                     "500", "--synthetic", "0", "--pseudo-labels", "4", "--pseudo-min-iou", "1.0", "--epochs", "1",
                     "--batch-size", "4"])
    assert code == 0
    assert "training without them" in capsys.readouterr().out
    assert not (run / "pseudo-labels").exists()


def blob_pngs(folder: Path, count: int) -> list[Path]:
    """`count` PNG masks of a rectangle with anti-aliased grey edges (levels 60 and 200)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        mask = np.zeros((64, 64), np.uint8)
        mask[18:44, 22:36 + i] = 60
        mask[20:42, 24:34 + i] = 200
        paths.append(folder / f"m{i}.png")
        Image.fromarray(mask).save(paths[-1])
    return paths


def test_a_batch_the_masks_cannot_fill_is_refused_before_anything_is_made(tmp_path, capsys):
    weights = write_tiny_weights(tmp_path / "start.pt", input_crop=1.25)
    blob_pngs(tmp_path / "masks", 5)
    run = tmp_path / "run"
    (run / "masks").mkdir(parents=True)  # what a start that stopped before training leaves
    assert cli_main(["adapt", str(tmp_path / "masks"), "--out", str(run), "--checkpoint", str(weights),
                     "--batch-size", "8"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "4 of the 5 masks" in err and "--batch-size 4" in err and "train.batch_size" not in err
    made = sorted(p.name for p in run.iterdir() if p.name != "run.lock")  # the lock a run holds its folder by
    assert made == ["masks"] and not any((run / "masks").iterdir())
    assert cli_main(["adapt", str(tmp_path / "masks"), "--out", str(run), "--checkpoint", str(weights),
                     "--batch-size", "4", "--synthetic", "3"]) == 2
    assert "--synthetic 3 is fewer than one batch of 4" in capsys.readouterr().err
    assert cli_main(["adapt", "--out", str(run), "--resume"]) == 2
    assert "without --resume" in capsys.readouterr().err


def test_adapt_thresholds_grey_masks_as_predict_does(tmp_path):
    from mask2hand import Mask2Hand
    from mask2hand.cli import build_parser
    from mask2hand.commands.adapt import prepare_inputs

    weights = write_tiny_weights(tmp_path / "start.pt", input_crop=1.25)
    paths = blob_pngs(tmp_path / "masks", 2)
    model = Mask2Hand.from_pretrained(weights, device="cpu", runtime="torch")
    args = build_parser().parse_args(["adapt", str(tmp_path / "masks"), "--out", str(tmp_path / "run")])
    prepared, names, failures = prepare_inputs(model, args)
    assert failures == 0 and names == [str(p) for p in paths]
    for item, path in zip(prepared, paths):
        expected = model.prepare(path).mask.model_input
        assert np.array_equal(item.mask.model_input, expected)
    # the grey rim (level 60) is background at predict's threshold, so the masks differ from a cut at 0.5
    assert not np.array_equal(prepared[0].mask.model_input, model.prepare(paths[0], threshold=0.5).mask.model_input)
