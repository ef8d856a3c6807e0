"""Refusing pictures and videos with nobody to animate, before anything is written.

The animator has no person detector: its keypoints are self-learned, and it will happily "animate"
a wall. Three cheap checks stand in for one (pure functions of tensors):

    contrast          the standard deviation of the grey levels, in [0, 1]. Below
                      MIN_CONTRAST (0.02, i.e. about 5 grey levels) the picture is uniform.
    keypoint confidence  the mean over keypoints of each heatmap's peak probability. On a
                      person the self-learned keypoints lock onto body parts (peaks of about
                      0.15 for the bundled model); on an empty room, noise or a uniform picture
                      the heatmaps spread out (0.03 to 0.08). Training measures it on its own
                      frames (every one shows a person) and stores the 5th percentile in the
                      checkpoint; a picture under CONFIDENCE_FRACTION (0.6) of that is refused,
                      and so is a driving video whose median frame is.
    motion            for a driving video: the largest mean absolute difference of a frame from
                      the video's median frame (its background). Below MIN_MOTION (0.01) nothing
                      moves in it, so there is no motion to transfer.

Limits: these detect emptiness, not people. A textured picture without a person (a poster, a
landscape) passes the contrast check and, when it has structure the keypoints can lock onto, the confidence check (a photo of an astronaut scores 0.21), and a video of moving leaves or a
panning camera passes the motion check; a person the model has never seen the like of (a close-up
face for a model trained on full bodies) is not refused either. A real person detector
(MediaPipe, as the personal-model pipeline uses) would catch those and is left for later.
"""

from __future__ import annotations

import numpy as np
import torch

from motionxfer.errors import NoPersonFound

MIN_CONTRAST = 0.02
CONFIDENCE_FRACTION = 0.6
MIN_MOTION = 0.01


def contrast(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B,) standard deviation of the grey levels."""
    grey = images.mean(dim=1)
    return grey.flatten(1).std(dim=1)


def keypoint_confidence(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) heatmaps (probabilities) -> (B,) mean over K of each one's peak."""
    return heatmaps.flatten(2).max(dim=-1).values.mean(dim=-1)


def person_statistics(images: torch.Tensor, heatmaps: torch.Tensor) -> dict[str, float]:
    """What training frames look like, for the checkpoint's `person_check`."""
    confidences = keypoint_confidence(heatmaps).cpu().numpy()
    contrasts = contrast(images).cpu().numpy()
    return {"confidence_p05": float(np.percentile(confidences, 5)),
            "confidence_p50": float(np.percentile(confidences, 50)),
            "contrast_p05": float(np.percentile(contrasts, 5)),
            "frames": float(len(confidences))}


def _check_confidence(confidence: float, statistics: dict[str, float], what: str,
                      hint: str) -> None:
    reference = statistics.get("confidence_p05")
    if reference and confidence < CONFIDENCE_FRACTION * reference:
        raise NoPersonFound(
            f"the animator finds no body in {what}: keypoint confidence {confidence:.3f}, under "
            f"{CONFIDENCE_FRACTION} x the least seen in training ({reference:.3f})", hint=hint)


def check_source_image(image: torch.Tensor, heatmaps: torch.Tensor,
                       statistics: dict[str, float], what: str) -> None:
    """NoPersonFound for a uniform image, or one the keypoints find nothing in (see the
    module). image (1, 3, S, S), heatmaps (1, K, h, w)."""
    level = float(contrast(image)[0])
    if level < MIN_CONTRAST:
        raise NoPersonFound(
            f"{what} is nearly uniform (grey-level spread {level:.3f} < {MIN_CONTRAST}): "
            "there is nobody in it to animate",
            hint="pass a photo of a person, whole body in view, like the model's training frames")
    _check_confidence(float(keypoint_confidence(heatmaps)[0]), statistics, what,
                      "pass a photo of a person, whole body in view, framed like the training "
                      "videos (or --no-person-check)")


def check_driving_video(frames: torch.Tensor, heatmaps: torch.Tensor,
                        statistics: dict[str, float], what: str) -> None:
    """NoPersonFound when nothing moves in (T, 3, H, W) driving frames, or the keypoints find
    nobody in them (median confidence of their (T, K, h, w) heatmaps; see the module)."""
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
    _check_confidence(float(keypoint_confidence(heatmaps).median()), statistics, what,
                      "pass a video of a person moving, framed like the training videos "
                      "(or --no-person-check)")
