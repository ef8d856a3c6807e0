"""Temporal consistency: TCM (Yao et al. 2017) and the flow-warping error (Lai et al. 2018).

Both warp the previous frame onto the current one with the optical flow of the *reference*
video (the real motion), then look at what the warp does not explain:

    W(X_{t-1})(p) = X_{t-1}(p + F_t(p)),  F_t = flow from reference frame t to frame t-1
    M_t(p)        = 1 where F_t is consistent with the forward flow (not occluded), else 0

Warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency"), frames as RGB in
[0, 1]:

    E_warp(t) = sum_p M_t(p) ||X_t(p) - W(X_{t-1})(p)||^2 / sum_p M_t(p)

reported for the generated video (and for the reference, as the floor set by the flow's own
errors). TCM (temporal consistency metric of Yao et al. 2017, "Occlusion-aware Video Temporal
Consistency", as C2F-FWN and REMOT use it):

    E_gen(t) = sum_p M_t(p) ||G_t(p) - W(G_{t-1})(p)||^2,   E_ref(t) likewise on the reference
    TCM(t)   = exp(-|E_gen(t) - E_ref(t)| / E_ref(t))

1 when the generated video changes from frame to frame exactly as the reference does; flicker
(E_gen > E_ref) and frozen or over-smoothed output (E_gen < E_ref) both lower it. When
E_ref(t) = 0 (a static, perfectly predicted reference frame) TCM(t) is 1 if E_gen(t) = 0 too and
0 otherwise (the limit of the formula).

Occlusion test (forward-backward consistency, Sundaram et al. 2010, as Lai et al. use it):
|b(p) + f(p + b(p))|^2 <= 0.01 (|b(p)|^2 + |f(p + b(p))|^2) + 0.5, with b the flow t -> t-1 and
f the flow t-1 -> t; points whose flow leaves the frame are masked too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

OCCLUSION_ALPHA = 0.01
OCCLUSION_BETA = 0.5
FLOW_METHODS = ("dis", "farneback")


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """Dense optical flow with OpenCV: `flow(a, b)` gives F with a(p) ~ b(p + F(p)).

    method "dis": DIS (Kroeger et al. 2016), OpenCV's medium preset; "farneback": Farneback 2003.
    """

    def __init__(self, method: str = "dis") -> None:
        if method not in FLOW_METHODS:
            raise ValueError(f"flow method must be one of {FLOW_METHODS}, not {method!r}")
        self.method = method
        self._dis = (cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
                     if method == "dis" else None)

    def flow(self, frame_from: np.ndarray, frame_to: np.ndarray) -> np.ndarray:  # (H, W, 2)
        a, b = _gray(frame_from), _gray(frame_to)
        if self._dis is not None:
            return self._dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15,
                                            iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _sample_positions(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32))
    return grid_x + flow[..., 0], grid_y + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image(p + flow(p)), bilinear; (H, W, C) float32 in, same out (outside: border copy)."""
    map_x, map_y = _sample_positions(flow)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _squared_norm(vectors: np.ndarray) -> np.ndarray:  # (H, W, 2) -> (H, W)
    return np.sum(vectors * vectors, axis=-1)


def non_occluded(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:  # (H, W) bool
    """Forward-backward consistency of the flows t -> t-1 (`backward`) and t-1 -> t."""
    map_x, map_y = _sample_positions(backward)
    height, width = backward.shape[:2]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    forward_there = cv2.remap(forward, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    round_trip = backward + forward_there
    consistent = _squared_norm(round_trip) <= (
        OCCLUSION_ALPHA * (_squared_norm(backward) + _squared_norm(forward_there))
        + OCCLUSION_BETA
    )
    return consistent & inside


@dataclass(frozen=True)
class FramePairConsistency:
    """What one step t-1 -> t gives (see the module docstring)."""

    generated_energy: float  # E_gen(t)
    reference_energy: float  # E_ref(t)
    generated_warp_error: float  # E_warp of the generated video at t
    reference_warp_error: float  # E_warp of the reference video at t
    valid_fraction: float  # share of pixels not occluded
    tcm: float


def tcm_value(generated_energy: float, reference_energy: float) -> float:
    if reference_energy == 0.0:
        return 1.0 if generated_energy == 0.0 else 0.0
    return math.exp(-abs(generated_energy - reference_energy) / reference_energy)


def frame_pair_consistency(
    reference_previous: np.ndarray, reference_current: np.ndarray,
    generated_previous: np.ndarray, generated_current: np.ndarray,
    estimator: FlowEstimator,
) -> FramePairConsistency:
    """TCM and warping errors of one step, frames (H, W, 3) uint8, flow from the reference."""
    backward = estimator.flow(reference_current, reference_previous)  # t -> t-1
    forward = estimator.flow(reference_previous, reference_current)  # t-1 -> t
    mask = non_occluded(backward, forward).astype(np.float64)  # (H, W)
    valid = float(mask.sum())

    def energy(previous: np.ndarray, current: np.ndarray) -> float:
        warped = warp(previous.astype(np.float32) / 255.0, backward)
        difference = current.astype(np.float32) / 255.0 - warped
        return float(np.sum(mask * np.sum(difference.astype(np.float64) ** 2, axis=-1)))

    generated_energy = energy(generated_previous, generated_current)
    reference_energy = energy(reference_previous, reference_current)
    return FramePairConsistency(
        generated_energy=generated_energy,
        reference_energy=reference_energy,
        generated_warp_error=generated_energy / valid if valid else math.nan,
        reference_warp_error=reference_energy / valid if valid else math.nan,
        valid_fraction=valid / mask.size,
        tcm=tcm_value(generated_energy, reference_energy),
    )
