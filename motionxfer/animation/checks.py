"""Refusing pictures and videos with nobody to animate, before anything is written.

The animator has no person detector: its keypoints are self-learned, and it will happily "animate"
a wall. Three cheap checks stand in for one (pure functions of tensors):

    contrast          the standard deviation of the grey levels, in [0, 1]. Below
                      MIN_CONTRAST (0.02, i.e. about 5 grey levels) the picture is uniform.
    keypoint spread   the RMS distance of the detected keypoints from their centroid, in the
                      [-1, 1] frame units. Training measures it on its own frames (every one of
                      which shows a person) and stores the 5th percentile in the checkpoint;
                      an image whose spread is below SPREAD_FRACTION (0.5) of that is refused.
    motion            for a driving video: the largest mean absolute difference of a frame from
                      the video's median frame (its background). Below MIN_MOTION (0.01) nothing
                      moves in it, so there is no motion to transfer.

Limits: these detect emptiness, not people. A textured picture without a person (a poster, a
landscape) passes the contrast and usually the spread check, and a video of moving leaves or a
panning camera passes the motion check; a person the model has never seen the like of (a close-up
face for a model trained on full bodies) is not refused either. A real person detector
(MediaPipe, as the personal-model pipeline uses) would catch those and is left for later.
"""

from __future__ import annotations

import numpy as np
import torch

from motionxfer.animation.keypoint_detector import Keypoints
from motionxfer.errors import NoPersonFound

MIN_CONTRAST = 0.02
SPREAD_FRACTION = 0.5
MIN_MOTION = 0.01


def contrast(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B,) standard deviation of the grey levels."""
    grey = images.mean(dim=1)
    return grey.flatten(1).std(dim=1)


def keypoint_spread(keypoints: Keypoints) -> torch.Tensor:
    """(B, K, 2) keypoints -> (B,) RMS distance from their centroid."""
    value = keypoints.value
    centred = value - value.mean(dim=1, keepdim=True)
    return centred.pow(2).sum(-1).mean(-1).sqrt()


def person_statistics(images: torch.Tensor, keypoints: Keypoints) -> dict[str, float]:
    """What training frames look like, for the checkpoint's `person_check`."""
    spreads = keypoint_spread(keypoints).cpu().numpy()
    contrasts = contrast(images).cpu().numpy()
    return {"spread_p05": float(np.percentile(spreads, 5)),
            "spread_p50": float(np.percentile(spreads, 50)),
            "contrast_p05": float(np.percentile(contrasts, 5)),
            "frames": float(len(spreads))}


def check_source_image(image: torch.Tensor, keypoints: Keypoints,
                       statistics: dict[str, float], what: str) -> None:
    """NoPersonFound for a uniform image, or one whose keypoints collapse (see the module)."""
    level = float(contrast(image)[0])
    if level < MIN_CONTRAST:
        raise NoPersonFound(
            f"{what} is nearly uniform (grey-level spread {level:.3f} < {MIN_CONTRAST}): "
            "there is nobody in it to animate",
            hint="pass a photo of a person, whole body in view, like the model's training frames")
    reference = statistics.get("spread_p05")
    spread = float(keypoint_spread(keypoints)[0])
    if reference and spread < SPREAD_FRACTION * reference:
        raise NoPersonFound(
            f"the animator finds no body in {what}: its keypoints span {spread:.3f}, under half "
            f"of the least spread seen in training ({reference:.3f})",
            hint="pass a photo of a person, whole body in view, framed like the training videos")


def check_driving_motion(frames: torch.Tensor, what: str) -> None:
    """NoPersonFound when nothing moves in (T, 3, H, W) driving frames (see the module)."""
    if frames.shape[0] < 2:
        raise NoPersonFound(f"{what} has a single frame: there is no motion in it",
                            hint="pass a video of a person moving")
    background = frames.median(dim=0).values
    motion = float((frames - background).abs().mean(dim=(1, 2, 3)).max())
    if motion < MIN_MOTION:
        raise NoPersonFound(
            f"nothing moves in {what} (largest change from its background {motion:.4f} < "
            f"{MIN_MOTION}): there is nobody in it whose motion could be copied",
            hint="pass a video of a person moving")
    level = float(contrast(frames).max())
    if level < MIN_CONTRAST:
        raise NoPersonFound(f"{what} is nearly uniform: there is nobody in it",
                            hint="pass a video of a person moving")
