"""Using a trained model: the `Mask2Hand` API and its `Prediction`, the network runners (torch,
ONNX), input preparation and cameras, many inputs with an outcome each, fitting inside predict,
sequences read frame by frame, streams and smoothing.

    from mask2hand.inference import Mask2Hand, HandStream, read_frames, predict_sequence
"""

from mask2hand.inference.api import Mask2Hand
from mask2hand.inference.pipeline import MaskInput, Outcome
from mask2hand.inference.result import Prediction
from mask2hand.inference.sequence import predict_sequence
from mask2hand.inference.stream import HandStream
from mask2hand.inference.video import read_frames

__all__ = ["HandStream", "Mask2Hand", "MaskInput", "Outcome", "Prediction", "predict_sequence", "read_frames"]
