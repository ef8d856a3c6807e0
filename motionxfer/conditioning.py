"""How a pose becomes the generator's input: the one place that decides it.

A `Conditioning` is recorded in every checkpoint, so training, transfer, preview, the speed
benchmark and the ONNX export all draw the same input for the same model:

    stick_figure   an OpenPose-style RGB drawing (3 channels; Everybody Dance Now's input)
    label_maps     the same strokes, one channel per body limb, then one per hand and one for the
                   face (`motionxfer.pose.render.render_label_maps`): the generator sees which
                   limb is which instead of telling them apart by colour

With `facing` (stick figures only), the torso is filled with a grey that says which way the body
faces (`pose.render.facing`): the same three channels, one more cue.

Every kind encodes one frame's keypoints as an (H, W, C) uint8 image (0 or 255 on strokes, with
anti-aliased edges), which the networks read as C channels in [-1, 1]. `to_rgb` makes any
encoding viewable (sample grids, side-by-side videos). A new kind (parsing maps) adds a branch
here and a name to CONDITIONINGS.

With `layout`, six channels follow the pose's: REMOT's layout, the target's six-class parsing map
(`parsing.labels`) as class probabilities x 255, predicted from the pose channels by the
checkpoint's layout generator (`networks.layout_generator.LayoutPredictor`, passed to `encode` as
a function: this layer runs no network). With `texture`, four more channels follow the pose's (and
the layout's, so the texture stays the last four): the target's own frame nearest in pose,
re-posed to this pose part by part, and its alpha (`texture.bank.TextureBank`, REMOT's texture
alignment). Encoding then needs the bank: training passes the reference frame it chose, transfer
lets the bank pick the nearest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from motionxfer.errors import BadInput, CheckpointError
from motionxfer.parsing.labels import CLASS_COLOURS, NUM_CLASSES
from motionxfer.pose.render import (
    RenderStyle,
    label_map_channels,
    render_label_maps,
    render_stick_figure,
)
from motionxfer.pose.skeleton import Skeleton
from motionxfer.texture.bank import TEXTURE_CHANNELS, TextureBank

CONDITIONINGS = ("stick_figure", "label_maps")
STICK_FIGURE_CHANNELS = 3
LAYOUT_CHANNELS = NUM_CLASSES  # one probability per parsing class
LAYOUT_BRIGHTNESS = 0.35  # `to_rgb` shows the layout's colours at this share, under the pose

# layout(pose (H, W, pose channels) uint8) -> (H, W, LAYOUT_CHANNELS) uint8 probabilities x 255
LayoutFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Conditioning:
    """Which input the generator takes, and how many channels it has."""

    kind: str = "stick_figure"
    channels: int = STICK_FIGURE_CHANNELS  # every channel, the layout's and texture's included
    texture: bool = False  # the re-posed nearest frame of the target: the last four channels
    layout: bool = False  # the predicted six-class parsing map follows the pose channels
    facing: bool = False  # the stick figure's torso is filled with the grey of its facing

    def __post_init__(self) -> None:
        if self.kind not in CONDITIONINGS:
            raise BadInput(f"unknown conditioning {self.kind!r}",
                           hint=f"choose one of: {', '.join(CONDITIONINGS)}")
        if self.kind == "stick_figure" and self.pose_channels != STICK_FIGURE_CHANNELS:
            raise BadInput(f"a stick figure has {STICK_FIGURE_CHANNELS} channels, not "
                           f"{self.pose_channels}", hint="report this as a bug")
        if self.facing and self.kind != "stick_figure":
            raise BadInput("the facing fill is drawn on the stick figure, not on label maps",
                           hint="train with --conditioning stick_figure, or without --facing")

    @property
    def pose_channels(self) -> int:
        """The channels that draw the pose (the layout's and the texture's come after them)."""
        return (self.channels - (TEXTURE_CHANNELS if self.texture else 0)
                - (LAYOUT_CHANNELS if self.layout else 0))

    @staticmethod
    def for_skeleton(kind: str, skeleton: Skeleton, texture: bool = False,
                     layout: bool = False, facing: bool = False) -> Conditioning:
        """The conditioning `kind` for poses of this joint layout, with or without texture,
        layout and the facing fill."""
        channels = (label_map_channels(skeleton) if kind == "label_maps"
                    else STICK_FIGURE_CHANNELS)
        return Conditioning(kind, channels + (TEXTURE_CHANNELS if texture else 0)
                            + (LAYOUT_CHANNELS if layout else 0), texture, layout, facing)

    def without_texture(self) -> Conditioning:
        """The pose channels alone, without layout or texture (what a stick-figure drawer
        makes, and what the layout generator reads)."""
        return Conditioning(self.kind, self.pose_channels, facing=self.facing)

    def encode(self, keypoints: np.ndarray, skeleton: Skeleton, width: int, height: int,
               source_size: tuple[int, int] | None = None, texture: TextureBank | None = None,
               reference: int | None = None, layout: LayoutFunction | None = None) -> np.ndarray:
        """One frame's keypoints (J, 3) -> the generator's input, (height, width, C) uint8.

        With `self.layout`, `layout` predicts the layout from the pose channels. With
        `self.texture`, `texture` is the target's bank and `reference` the bank frame to re-pose
        (None: the nearest in pose)."""
        if self.kind == "stick_figure":
            pose = render_stick_figure(keypoints, skeleton, width, height, source_size,
                                       RenderStyle(facing_fill=self.facing))
        else:
            maps = render_label_maps(keypoints, skeleton, width, height, source_size)
            if maps.shape[0] != self.pose_channels:
                raise BadInput(
                    f"the model was trained on label maps of {self.pose_channels} channels, but "
                    f"the '{skeleton.name}' joint layout gives {maps.shape[0]}",
                    hint="drive the model with poses of the joint layout it was trained on",
                )
            pose = np.ascontiguousarray(maps.transpose(1, 2, 0))
        pose = self.with_layout(pose, layout)
        if not self.texture:
            return pose
        if texture is None:
            raise BadInput("this model takes the target's own frames as texture, and none were "
                           "given", hint="transfer inside the target's project (its frames are "
                           "the texture)")
        if texture.size != (width, height):
            raise BadInput(f"the texture bank is {texture.size[0]}x{texture.size[1]}, the model "
                           f"makes {width}x{height}", hint="report this as a bug")
        reposed = texture.encode(keypoints, source_size or (width, height), reference)
        return np.concatenate([pose, reposed], axis=-1)

    def with_layout(self, pose: np.ndarray, layout: LayoutFunction | None) -> np.ndarray:
        """The pose channels (H, W, pose channels) uint8 followed by the layout `layout` predicts
        from them when `self.layout` (else the pose as it is)."""
        if not self.layout:
            return pose
        if layout is None:
            raise BadInput("this model takes the layout its layout generator predicts, and none "
                           "was given", hint="transfer with the checkpoint's layout generator "
                           "(the torch backend runs it)")
        predicted = layout(pose)
        if predicted.shape != (*pose.shape[:2], LAYOUT_CHANNELS) or predicted.dtype != np.uint8:
            raise BadInput(f"the layout generator made {predicted.shape} {predicted.dtype}, not "
                           f"{(*pose.shape[:2], LAYOUT_CHANNELS)} uint8",
                           hint="report this as a bug")
        return np.concatenate([pose, predicted], axis=-1)

    def to_rgb(self, encoded: np.ndarray) -> np.ndarray:
        """(..., H, W, C) uint8 -> (..., H, W, 3) uint8 for people to look at: the pose, over
        the layout's class colours at `LAYOUT_BRIGHTNESS` and the re-posed texture at half
        brightness when there are."""
        pose = encoded[..., :self.pose_channels]
        if pose.shape[-1] == 3 and self.kind == "stick_figure":
            shown = pose
        else:
            palette = _palette(pose.shape[-1])  # (C, 3)
            weighted = pose[..., :, None].astype(np.float32) / 255.0 * palette  # (..., C, 3)
            shown = np.clip(weighted.max(axis=-2), 0, 255).astype(np.uint8)
        after = self.pose_channels
        if self.layout:
            probabilities = encoded[..., after:after + LAYOUT_CHANNELS].astype(np.float32) / 255.0
            colours = probabilities @ CLASS_COLOURS.astype(np.float32)  # (..., H, W, 3)
            shown = np.maximum(shown, (LAYOUT_BRIGHTNESS * colours).astype(np.uint8))
            after += LAYOUT_CHANNELS
        if not self.texture:
            return shown
        return np.maximum(shown, encoded[..., after:after + 3] // 2)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "channels": self.channels, "texture": self.texture,
                "layout": self.layout, "facing": self.facing}

    @staticmethod
    def from_dict(values: dict[str, Any] | None, where: str) -> Conditioning:
        """As saved by `to_dict`; None (checkpoints written before the choice existed): the RGB
        stick figure, the only input there was. Without "texture", "layout" or "facing": none."""
        if values is None:
            return Conditioning()
        try:
            return Conditioning(str(values["kind"]), int(values["channels"]),
                                bool(values.get("texture", False)),
                                bool(values.get("layout", False)),
                                bool(values.get("facing", False)))
        except (KeyError, TypeError, ValueError, BadInput) as error:
            raise CheckpointError(f"{where} has an unreadable conditioning: {error}",
                                  hint="delete it and train again") from error


def _palette(count: int) -> np.ndarray:
    """`count` distinct bright colours, (count, 3) float32 in [0, 255]."""
    hues = np.arange(count, dtype=np.float32) / max(count, 1)
    channel = np.stack([hues, hues + 1 / 3, hues + 2 / 3], axis=1) % 1.0
    return (255.0 * np.clip(np.abs(channel * 6 - 3) - 1, 0, 1)).astype(np.float32)
