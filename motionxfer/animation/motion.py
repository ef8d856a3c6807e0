"""Motion transfer for animation (FOMM, Sec. 4): the keypoints that drive the source image.

Absolute transfer uses the driving frame's keypoints as they are: the source's shape is replaced
by the driving person's. Relative transfer (the paper's choice) moves the source keypoints by the
driving keypoints' displacement since the driving video's first frame,

    kp_new = kp_S + scale (kp_D(t) - kp_D(1)),   J_new = J_D(t) J_D(1)^-1 J_S,

where scale = sqrt(area(hull(kp_S)) / area(hull(kp_D(1)))) adapts the motion's size to the
source (`adapt_movement_scale`); the driving video's first frame should show a pose like the
source's.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError

from motionxfer.animation.geometry import invert_2x2
from motionxfer.animation.keypoint_detector import Keypoints
from motionxfer.errors import BadInput


def convex_hull_area(points: torch.Tensor) -> float:
    """points (K, 2) -> the area of their convex hull. BadInput when they span no area."""
    array = points.detach().cpu().double().numpy()
    try:
        return float(ConvexHull(array).volume)  # in 2-D, volume is the area
    except QhullError as error:
        raise BadInput(f"the {len(array)} keypoints span no area (all on one line)",
                       hint="pass adapt_movement_scale=False") from error


def movement_scale(source: Keypoints, driving_initial: Keypoints) -> torch.Tensor:
    """sqrt(source hull area / first driving frame's hull area), one per batch element, (B,)."""
    if source.value.shape[0] != driving_initial.value.shape[0]:
        raise BadInput(f"{source.value.shape[0]} source keypoint sets for "
                       f"{driving_initial.value.shape[0]} first driving frames",
                       hint="give one first driving frame per source image")
    ratios = [np.sqrt(convex_hull_area(source_points) / convex_hull_area(driving_points))
              for source_points, driving_points in zip(source.value, driving_initial.value)]
    return torch.tensor(ratios, dtype=source.value.dtype, device=source.value.device)


def absolute_motion(driving: Keypoints) -> Keypoints:
    """The driving frame's keypoints and Jacobians, unchanged."""
    return driving


def relative_motion(source: Keypoints, driving: Keypoints, driving_initial: Keypoints,
                    adapt_movement_scale: bool = True,
                    relative_jacobian: bool = True) -> Keypoints:
    """Move the source keypoints (B, K, 2) as the driving ones moved since `driving_initial`.

    Batches broadcast: one source (1, K, 2) with a driving sequence (T, K, 2) gives (T, K, 2).
    Without `relative_jacobian` (or without Jacobians) the driving Jacobians are used as they are.
    """
    if source.value.shape[-2:] != driving.value.shape[-2:] or (
            driving.value.shape[-2:] != driving_initial.value.shape[-2:]):
        raise BadInput(f"keypoint shapes differ: source {tuple(source.value.shape)}, driving "
                       f"{tuple(driving.value.shape)}, first driving "
                       f"{tuple(driving_initial.value.shape)}",
                       hint="detect all three with the same keypoint detector")
    scale = torch.ones((), dtype=source.value.dtype, device=source.value.device)
    if adapt_movement_scale:
        scale = movement_scale(source, driving_initial).view(-1, 1, 1)
    value = source.value + scale * (driving.value - driving_initial.value)
    jacobian = driving.jacobian
    if (relative_jacobian and source.jacobian is not None and driving.jacobian is not None
            and driving_initial.jacobian is not None):
        jacobian = driving.jacobian @ invert_2x2(driving_initial.jacobian) @ source.jacobian
    return Keypoints(value, jacobian)
