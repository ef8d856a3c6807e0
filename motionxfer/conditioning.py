"""How a pose becomes the generator's input: the one place that decides it.

A `Conditioning` is recorded in every checkpoint, so training, transfer, preview, the speed
benchmark and the ONNX export all draw the same input for the same model:

    stick_figure   an OpenPose-style RGB drawing (3 channels; Everybody Dance Now's input)
    label_maps     the same strokes, one channel per body limb, then one per hand and one for the
                   face (`motionxfer.pose.render.render_label_maps`): the generator sees which
                   limb is which instead of telling them apart by colour

Every kind encodes one frame's keypoints as an (H, W, C) uint8 image (0 or 255 on strokes, with
anti-aliased edges), which the networks read as C channels in [-1, 1]. `to_rgb` makes any
encoding viewable (sample grids, side-by-side videos). A new kind (parsing maps, reference
textures) adds a branch here and a name to CONDITIONINGS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from motionxfer.errors import BadInput, CheckpointError
from motionxfer.pose.render import label_map_channels, render_label_maps, render_stick_figure
from motionxfer.pose.skeleton import Skeleton

CONDITIONINGS = ("stick_figure", "label_maps")
STICK_FIGURE_CHANNELS = 3


@dataclass(frozen=True)
class Conditioning:
    """Which input the generator takes, and how many channels it has."""

    kind: str = "stick_figure"
    channels: int = STICK_FIGURE_CHANNELS

    def __post_init__(self) -> None:
        if self.kind not in CONDITIONINGS:
            raise BadInput(f"unknown conditioning {self.kind!r}",
                           hint=f"choose one of: {', '.join(CONDITIONINGS)}")
        if self.kind == "stick_figure" and self.channels != STICK_FIGURE_CHANNELS:
            raise BadInput(f"a stick figure has {STICK_FIGURE_CHANNELS} channels, not "
                           f"{self.channels}", hint="report this as a bug")

    @staticmethod
    def for_skeleton(kind: str, skeleton: Skeleton) -> Conditioning:
        """The conditioning `kind` for poses of this joint layout."""
        if kind == "label_maps":
            return Conditioning(kind, label_map_channels(skeleton))
        return Conditioning(kind)

    def encode(self, keypoints: np.ndarray, skeleton: Skeleton, width: int, height: int,
               source_size: tuple[int, int] | None = None) -> np.ndarray:
        """One frame's keypoints (J, 3) -> the generator's input, (height, width, C) uint8."""
        if self.kind == "stick_figure":
            return render_stick_figure(keypoints, skeleton, width, height, source_size)
        maps = render_label_maps(keypoints, skeleton, width, height, source_size)  # (C, H, W)
        if maps.shape[0] != self.channels:
            raise BadInput(
                f"the model was trained on label maps of {self.channels} channels, but the "
                f"'{skeleton.name}' joint layout gives {maps.shape[0]}",
                hint="drive the model with poses of the joint layout it was trained on",
            )
        return np.ascontiguousarray(maps.transpose(1, 2, 0))

    def to_rgb(self, encoded: np.ndarray) -> np.ndarray:
        """(..., H, W, C) uint8 -> (..., H, W, 3) uint8 for people to look at."""
        if encoded.shape[-1] == 3 and self.kind == "stick_figure":
            return encoded
        palette = _palette(encoded.shape[-1])  # (C, 3)
        weighted = encoded[..., :, None].astype(np.float32) / 255.0 * palette  # (..., C, 3)
        return np.clip(weighted.max(axis=-2), 0, 255).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "channels": self.channels}

    @staticmethod
    def from_dict(values: dict[str, Any] | None, where: str) -> Conditioning:
        """As saved by `to_dict`; None (checkpoints written before the choice existed): the RGB
        stick figure, the only input there was."""
        if values is None:
            return Conditioning()
        try:
            return Conditioning(str(values["kind"]), int(values["channels"]))
        except (KeyError, TypeError, ValueError, BadInput) as error:
            raise CheckpointError(f"{where} has an unreadable conditioning: {error}",
                                  hint="delete it and train again") from error


def _palette(count: int) -> np.ndarray:
    """`count` distinct bright colours, (count, 3) float32 in [0, 255]."""
    hues = np.arange(count, dtype=np.float32) / max(count, 1)
    channel = np.stack([hues, hues + 1 / 3, hues + 2 / 3], axis=1) % 1.0
    return (255.0 * np.clip(np.abs(channel * 6 - 3) - 1, 0, 1)).astype(np.float32)
