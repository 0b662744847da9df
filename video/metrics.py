"""How much a stylized video flickers and drifts, measured against the motion of its input frames.

- ``flicker``: output t against output t-1 warped onto it by the input's flow, mean absolute
  difference (0-255) over the pixels the consistency check trusts; what the eye sees as flicker.
- ``warping_error``: Lai et al. 2018 ("Learning Blind Video Temporal Consistency", eq. 9): output
  t+1 warped onto output t by the input's flow t -> t+1, the squared RGB distance (values in
  [0, 1], summed over the channels) averaged over the non-occluded pixels of frame t. Their flow is
  FlowNet2's; ours is DIS, the one the stylization follows too.
- ``band_difference``: where nothing in the input changes, how far the last output is from an
  earlier one, against how far consecutive outputs are (drift).
- ``sharpness``: the variance of the Laplacian; an output that blurs as it is warped again and
  again also flickers less, so the two are read together.

Every function takes the pairs' values one by one, so a long video is measured in one pass."""
from __future__ import annotations

import numpy as np

from . import flow


def pair_flicker(previous_frame, frame, previous_output, output) -> float:
    """Flicker of one pair (0-255)."""
    backward, mask = flow.pair(previous_frame, frame)
    warped = flow.warp(previous_output, backward).astype(np.float32)
    difference = np.abs(output.astype(np.float32) - warped).mean(-1)
    return float((difference * mask).sum() / max(mask.sum(), 1.0))


def pair_warping_error(frame, next_frame, output, next_output) -> float:
    """Lai et al.'s warping error of one pair (frames t, t+1)."""
    forward, mask = flow.pair(next_frame, frame)   # flow t -> t+1, and where frame t is seen in t+1
    warped = flow.warp(next_output, forward).astype(np.float32) / 255.0
    distance = np.sum((output.astype(np.float32) / 255.0 - warped) ** 2, -1)
    return float((distance * mask).sum() / max(mask.sum(), 1.0))


def band_difference(a, b, rows: slice) -> float:
    """Mean absolute difference (0-255) of two outputs over the rows ``rows``."""
    return float(np.abs(a[rows].astype(np.float32) - b[rows].astype(np.float32)).mean())


def sharpness(image, rows: slice) -> float:
    """The variance of the Laplacian of the luminance over ``rows``: falls as a picture blurs."""
    import cv2
    grey = cv2.cvtColor(np.ascontiguousarray(image[rows]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())
