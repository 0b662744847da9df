"""Optical flow between frames and what Ruder et al. (2016) build on it: the previous output warped
into the current frame, and the mask of the pixels where that warp can be trusted.

A flow ``f`` from frame a to frame b gives, for each pixel x of a, where it went: a(x) ~ b(x + f(x)).
"""
from __future__ import annotations

import cv2
import numpy as np


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow a -> b (float32 (h, w, 2), x then y) by DIS, medium preset."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(a), _gray(b), None)


def warp(image: np.ndarray, flow: np.ndarray, *, sharp: bool = False) -> np.ndarray:
    """``image`` sampled at x + flow(x): with the flow from frame t to frame t-1, the output of t-1
    moved onto frame t. Bilinear, or bicubic with ``sharp`` (a picture warped again and again, as a
    video's outputs are, blurs less); outside the picture the border repeats (the mask zeroes it)."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_CUBIC if sharp else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def consistency_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s weights c for frame t, float32 (h, w) in {0, 1}: ``backward`` is the flow t -> t-1,
    ``forward`` the flow t-1 -> t. 0 where going back and forth does not return (disocclusion),
    at motion boundaries, and where the backward flow leaves the picture; 1 elsewhere."""
    h, w = backward.shape[:2]
    forward_at = warp(forward, backward)  # the forward flow at the point each pixel came from
    round_trip = np.sum((forward_at + backward) ** 2, -1)
    disoccluded = round_trip > 0.01 * (np.sum(forward_at ** 2, -1) + np.sum(backward ** 2, -1)) + 0.5
    du = np.gradient(backward[..., 0])
    dv = np.gradient(backward[..., 1])
    gradient = du[0] ** 2 + du[1] ** 2 + dv[0] ** 2 + dv[1] ** 2
    boundary = gradient > 0.01 * np.sum(backward ** 2, -1) + 0.002
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    # within half a pixel of the picture is inside it: the edge pixel itself. With (x < 0), a still
    # picture's DIS flow of -0.001 px marked its first row and column untrusted in every frame, and
    # the edges, restarted from the input each frame, flickered and drifted (10.6 of 0-255 in 37
    # frames, the rest of a still band 0.1-0.3)
    outside = (x < -0.5) | (x > w - 0.5) | (y < -0.5) | (y > h - 0.5)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def pair(previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For frame t (``current``): the flow t -> t-1 and its consistency mask. One task on the cluster."""
    backward = dis_flow(current, previous)
    forward = dis_flow(previous, current)
    return backward, consistency_mask(backward, forward)
