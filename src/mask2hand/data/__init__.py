"""Data: dataset folders, the synthetic generators, the FreiHAND reader, augmentation, noise,
and the torch Dataset. See docs/DATASETS.md."""

from mask2hand.data.augment import CameraChange, camera_change, transform_hand_params, transform_points, warp_mask
from mask2hand.data.dataset import AugmentConfig, CropConfig, HandBatch, HandParams, HandSample, MaskDataset, collate_samples
from mask2hand.data.freihand import FreiHand, convert_freihand, load_split_file, paper_split, save_split_file
from mask2hand.data.noise import NOISE_KINDS, NoiseConfig, apply_noise
from mask2hand.data.storage import DatasetWriter, StoredDataset, open_dataset
from mask2hand.data.synthetic import (BroadCorpus, NaturalCorpus, PaperProtocol, ViewSampling, generate_broad,
                                      generate_natural, generate_paper)

__all__ = [
    "AugmentConfig", "BroadCorpus", "NaturalCorpus", "CropConfig", "CameraChange", "DatasetWriter", "FreiHand", "HandBatch", "HandParams",
    "HandSample", "MaskDataset", "NOISE_KINDS", "NoiseConfig", "PaperProtocol", "StoredDataset", "ViewSampling",
    "apply_noise", "camera_change", "collate_samples", "convert_freihand", "generate_broad", "generate_natural", "generate_paper",
    "load_split_file", "open_dataset", "paper_split", "save_split_file", "transform_hand_params",
    "transform_points", "warp_mask",
]
