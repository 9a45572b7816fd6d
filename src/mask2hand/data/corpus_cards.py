"""What a synthetic dataset's card says about how it was drawn: the texts of
`cards/corpus_cards.yaml`, filled from the corpus settings (mask2hand.data.synthetic)."""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from pathlib import Path

import yaml

CARD_TEXTS = Path(__file__).resolve().parent / "cards" / "corpus_cards.yaml"


@cache
def texts() -> dict:
    """The card texts (read once)."""
    return yaml.safe_load(CARD_TEXTS.read_text())


def _plain(settings) -> dict:
    """A settings dataclass's fields, tuples as lists (as the card prints them)."""
    return {name: list(value) if isinstance(value, tuple) else value for name, value in asdict(settings).items()}


def common_choices() -> dict[str, str]:
    """What every synthetic corpus shares: rasterization, placement, rejection, units, precision."""
    return dict(texts()["common"])


def hand_params_choice(source, variety) -> str:
    """The stored hand parameters of `source` (a hand source), with the shape variety settings."""
    t = texts()["hand_params"]
    if not source.has_layer_params:
        return t["other_hand"].format(num_shape=source.num_shape, name=source.name)
    return t["layer"] + (t["with_variety"] if variety.probability > 0 else "")


def forearm_choice(settings) -> str:
    """The forearm of ForearmSettings ("none" when off)."""
    return "none" if settings.probability <= 0 else texts()["forearm"].format(**_plain(settings))


def variety_choice(settings) -> str:
    """The extra shape variety of ShapeVariety settings ("none" when off)."""
    return "none" if settings.probability <= 0 else texts()["shape_variety"].format(**_plain(settings))


def _shape_choice(source, std: float, clip: float) -> str:
    t = texts()["shape"]
    return t["betas"].format(std=std, clip=clip) if source.shape_name == "betas" else t["other"].format(name=source.name)


def _view_fields(view) -> dict:
    fields = _plain(view)
    fields.update(width=view.image_size[1], height=view.image_size[0])
    return fields


def paper_choices(protocol, add_mean: bool) -> dict[str, str]:
    """The paper protocol's own draws; add_mean: whether the model's mean pose is added."""
    t = texts()["paper"]
    fields = {**_view_fields(protocol.view), "num_pose_pcs": protocol.num_pose_pcs,
              "pcs_low": protocol.pcs_range[0], "pcs_high": protocol.pcs_range[1],
              "views_per_pose": protocol.views_per_pose, "mean": t["mean_added"] if add_mean else t["mean_flat"]}
    return {key: t[key].format(**fields) for key in ("source", "pose", "betas", "views", "camera", "size",
                                                      "test_split")}


def broad_choices(corpus, source) -> dict[str, str]:
    """The broad corpus's own draws."""
    t, fields = texts()["broad"], _view_fields(corpus.view)
    return {"pose": t["pose"], "betas": _shape_choice(source, corpus.betas_std, corpus.betas_clip),
            "orientation": t["orientation"], "camera": t["camera"].format(**fields),
            "size": t["size"].format(**fields)}


def natural_choices(corpus, source) -> dict[str, str]:
    """The natural corpus's own draws."""
    t, fields = texts()["natural"], _view_fields(corpus.view)
    return {"pose": t["pose"], "betas": _shape_choice(source, corpus.betas_std, corpus.betas_clip),
            "orientation": t["orientation"].format(**_plain(corpus.orientation)),
            "camera": t["camera"].format(**fields), "size": t["size"].format(**fields)}
