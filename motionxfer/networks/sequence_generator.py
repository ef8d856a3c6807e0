"""Sequence-to-sequence generation: a window of N consecutive frames made jointly, no recurrence.

The recurrent generator (motionxfer.networks.generator) makes frame t from the pose inputs of t
and t-1 and its own frame t-1, so an error at one frame is fed back into the next. This network
reads the pose inputs of a window of N consecutive frames and paints all N at once: each frame
goes through pix2pixHD's encoder (the global generator's first half, with its building blocks),
the N bottleneck feature maps are mixed along time, and each goes through the decoder:

    encoder     reflection pad + 7x7 conv, `n_downsample` stride-2 convs, n_blocks // 2
                residual blocks                                   per frame: (B * N, C, h, w)
    temporal    features + conv_t(ReLU(conv_t(features))), conv_t a (3, 1, 1) convolution along
                the window's frames at every bottleneck position (replicate-padded at the
                window's ends), so frame k sees frames k-2 .. k+2     (B, C, N, h, w)
    decoder     the other residual blocks, the upsamplings, 7x7 conv + tanh     per frame

The output is the person's colours and a mask (`extra_outputs = 1`); once a plate is set
(`set_plate`, the target's background as in the compositing generator) the frame is

    frame = mask * person + (1 - mask) * plate          (no plate: frame = person)

Call: frames (B, N, 3, H, W) = network(poses (B, N, C, H, W)); `last_mask` is (B, N, 1, H, W).
The temporal convolution takes any N, so a window shorter than the trained one (a short video)
runs too. The local enhancer is not offered with this network. `paint` and `compose` are the two
halves of the call: the texture's variant (motionxfer.networks.sequence_texture_generator) paints
two corrections instead of the mask and composes each frame as the texture generator does.

A video longer than a window is made in overlapping windows (`window_starts`, stride N // 2 by
default) whose frames are cross-faded where they overlap (`crossfade_weights`, `WindowBlender`):
a window's frame weighs in proportion to its distance from the window's ends, and each frame is
the weighted mean of the windows that hold it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from motionxfer.networks.compositing_generator import plate_at_size, plate_buffer, sharpen_mask
from motionxfer.networks.generator import (
    GeneratorConfig,
    ResidualBlock,
    downsampling_layer,
    output_layer,
    upsampling_layer,
)

TEMPORAL_KERNEL = 3  # frames each temporal convolution reads


class TemporalMixing(nn.Module):
    """features + conv_t(ReLU(conv_t(features))) along the window: (B, C, N, h, w) in and out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        padding = (TEMPORAL_KERNEL // 2, 0, 0)
        self.body = nn.Sequential(
            nn.Conv3d(channels, channels, (TEMPORAL_KERNEL, 1, 1), padding=padding,
                      padding_mode="replicate"),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, (TEMPORAL_KERNEL, 1, 1), padding=padding,
                      padding_mode="replicate"),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


class SequenceGenerator(nn.Module):
    """frames (B, N, 3, H, W) = composite(G(pose inputs (B, N, C, H, W)), plate)."""

    extra_outputs = 1  # the mask

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        if config.local_enhancer:
            raise ValueError("the sequence generator has no local enhancer: use a preset "
                             "without local_enhancer (256 or 512), or train without --sequence")
        self.config = dataclasses.replace(config, extra_outputs=self.extra_outputs)
        widths = [min(config.ngf * 2**level, config.max_channels)
                  for level in range(config.n_downsample + 1)]
        before = config.n_blocks // 2
        encoder: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(config.pose_channels, widths[0], 7),
            nn.InstanceNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for level in range(config.n_downsample):
            encoder += downsampling_layer(widths[level], widths[level + 1])
        encoder += [ResidualBlock(widths[-1]) for _ in range(before)]
        decoder: list[nn.Module] = [ResidualBlock(widths[-1])
                                    for _ in range(config.n_blocks - before)]
        for level in reversed(range(config.n_downsample)):
            decoder += upsampling_layer(widths[level + 1], widths[level], config.upsample)
        self.encoder = nn.Sequential(*encoder)
        self.temporal = TemporalMixing(widths[-1])
        self.decoder = nn.Sequential(*decoder)
        self.output = output_layer(widths[0], self.config.output_channels)
        self.register_buffer("plate", torch.zeros(1, config.image_channels, 1, 1),
                             persistent=False)
        self.composites = False  # True once a plate is set
        self.last_mask: torch.Tensor | None = None  # (B, N, 1, H, W) in [0, 1]
        self.mask_gain = 1.0  # the mask's contrast in the composite (`sharpen_mask`)

    def set_plate(self, plate: torch.Tensor) -> None:
        """(3, H, W) or (1, 3, H, W) in [-1, 1]: the background the person is painted over."""
        self.plate = plate_buffer(plate, self.plate.device, self.config.image_channels)
        self.composites = True

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        if poses.ndim != 5:
            raise ValueError(f"expected pose inputs (B, N, C, H, W), got {tuple(poses.shape)}")
        batch, length, _, height, width = poses.shape
        multiple = self.config.size_multiple
        if height % multiple or width % multiple:
            raise ValueError(f"frame size {width}x{height} is not a multiple of {multiple} "
                             "(2 ** n_downsample)")
        flat = poses.flatten(0, 1)  # (B * N, C, H, W)
        frames, mask = self.compose(self.paint(flat, batch), flat)
        self.last_mask = None if mask is None else mask.reshape(batch, length, 1, height, width)
        return frames.reshape(batch, length, self.config.image_channels, height, width)

    def paint(self, poses: torch.Tensor, batch: int) -> torch.Tensor:
        """The windows' pose inputs (B * N, C, H, W), window by window, -> the painted colours
        and extra outputs (B * N, 3 + extra_outputs, H, W) in [-1, 1]."""
        features = self.encoder(poses)  # (B * N, C', h, w)
        channels, rows, columns = features.shape[1:]
        features = features.reshape(batch, -1, channels, rows, columns).transpose(1, 2)
        features = self.temporal(features)  # (B, C', N, h, w)
        features = features.transpose(1, 2).reshape(-1, channels, rows, columns)
        return self.output(self.decoder(features))

    def compose(self, painted: torch.Tensor, poses: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frames (B * N, 3, H, W) and their masks (B * N, 1, H, W) (None without a plate)
        from what `paint` made of the pose inputs `poses` (B * N, C, H, W)."""
        person = painted[:, :self.config.image_channels]
        if not self.composites:
            return person, None
        mask = (painted[:, self.config.image_channels:] + 1) * 0.5  # in [0, 1]
        shown = sharpen_mask(mask, self.mask_gain)
        return shown * person + (1 - shown) * self.plate_at(poses.shape[-2:], person.dtype), mask

    def plate_at(self, size: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        """The plate (1, 3, H, W) resized to the frame's (H, W)."""
        return plate_at_size(self.plate, size, dtype)


# --- a video in overlapping windows --------------------------------------------------------------

def window_stride(length: int) -> int:
    """The default stride between windows of `length` frames: half a window (at least 1)."""
    return max(1, length // 2)


def window_starts(frame_count: int, length: int, stride: int) -> list[int]:
    """First frames of the windows that cover frames 0 .. frame_count - 1: every `stride` frames,
    the last window ending at the last frame; one (shorter) window when the video is shorter."""
    if length < 1 or not 1 <= stride <= length:
        raise ValueError(f"a window of {length} frames needs a stride in [1, {length}], "
                         f"got {stride}")
    if frame_count <= length:
        return [0] if frame_count > 0 else []
    starts = list(range(0, frame_count - length + 1, stride))
    if starts[-1] != frame_count - length:
        starts.append(frame_count - length)
    return starts


def crossfade_weights(length: int, overlap: int) -> np.ndarray:
    """(length,) weights of a window's frames: rising linearly over the first `overlap` frames,
    falling over the last `overlap` frames, 1 in between: (k + 1) / (overlap + 1) near the start."""
    positions = np.arange(length)
    edge = np.minimum(positions + 1, length - positions) / (overlap + 1)
    return np.minimum(1.0, edge)


class WindowBlender:
    """Takes the windows of a video in order (`add`) and gives back each frame once no later
    window holds it: the cross-faded mean of the windows that do (`crossfade_weights`). Frames
    are arrays or tensors of one shape (numpy or torch; the arithmetic is the same)."""

    def __init__(self, frame_count: int, length: int, stride: int) -> None:
        self.frame_count = frame_count
        self.length = min(length, frame_count)
        self.starts = window_starts(frame_count, length, stride)
        self.overlap = max(self.length - stride, 0)
        self.sums: dict[int, tuple[Any, float]] = {}  # frame -> (weighted sum, weight)
        self.added = 0
        self.emitted = 0

    @property
    def done(self) -> bool:
        return self.added == len(self.starts)

    def next_window(self) -> range:
        """The frames of the window `add` takes next."""
        start = self.starts[self.added]
        return range(start, start + self.length)

    def add(self, window: Sequence[Any]) -> list[tuple[int, Any]]:
        """The next window's frames ((N, ...) in order) -> the (index, frame) now final."""
        frames = self.next_window()
        if len(window) != len(frames):
            raise ValueError(f"window {self.added} holds frames {frames.start}..{frames.stop - 1}"
                             f" ({len(frames)}), got {len(window)}")
        weights = crossfade_weights(len(frames), self.overlap)
        for index, frame, weight in zip(frames, window, weights):
            total, weight_sum = self.sums.get(index, (0.0, 0.0))
            self.sums[index] = (total + float(weight) * frame, weight_sum + float(weight))
        self.added += 1
        final_before = self.starts[self.added] if not self.done else self.frame_count
        finished = []
        for index in range(self.emitted, final_before):
            total, weight_sum = self.sums.pop(index)
            finished.append((index, total / weight_sum))
        self.emitted = final_before
        return finished


def blend_windows(windows: Sequence[Sequence[Any]], frame_count: int, length: int,
                  stride: int) -> list[Any]:
    """Every frame of a video from its windows (those of `window_starts`, in order)."""
    blender = WindowBlender(frame_count, length, stride)
    frames: list[Any] = []
    for window in windows:
        frames += [frame for _, frame in blender.add(window)]
    if not blender.done:
        raise ValueError(f"{len(windows)} windows given, the video needs {len(blender.starts)}")
    return frames


def generate_windows(network: SequenceGenerator, poses: torch.Tensor, length: int,
                     stride: int | None = None) -> torch.Tensor:
    """Frames (T, 3, H, W) of the pose inputs (T, C, H, W) of a run of consecutive frames, in
    overlapping windows of `length` cross-faded (the network as transfer runs it)."""
    stride = window_stride(length) if stride is None else stride
    blender = WindowBlender(len(poses), length, stride)
    frames: list[torch.Tensor] = []
    while not blender.done:
        window = blender.next_window()
        made = network(poses[window.start:window.stop][None])[0]  # (N, 3, H, W)
        frames += [frame for _, frame in blender.add(list(made))]
    return torch.stack(frames) if frames else poses.new_zeros((0, 3, *poses.shape[-2:]))
