"""Images as arrays and tensors: resizing, the uint8 <-> [-1, 1] conversions every network input
and output goes through, and PNG files. Pure functions, no project."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from motionxfer.errors import BadInput
from motionxfer.io.files import atomic_write


def working_size(source_size: tuple[int, int], height: int, multiple: int) -> tuple[int, int]:
    """(width, height) of the frames the generator works on, for a (w, h) source video."""
    source_width, source_height = source_size
    if source_width <= 0 or source_height <= 0:
        raise BadInput(f"the video has no picture size ({source_width}x{source_height})",
                       hint="re-encode the video")
    width = max(multiple, round(height * source_width / source_height / multiple) * multiple)
    return int(width), int(height)


def resize_frame(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (size[1], size[0], 3) uint8; INTER_AREA when shrinking."""
    if (rgb.shape[1], rgb.shape[0]) == size:
        return np.ascontiguousarray(rgb)
    shrinking = size[0] <= rgb.shape[1] and size[1] <= rgb.shape[0]
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def images_to_tensor(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float32 in [-1, 1], on the images' device."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, C) images -> (B, C, H, W) float32 in [-1, 1]."""
    return images_to_tensor(torch.from_numpy(np.stack(images)))


def to_images(tensor: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, C) uint8."""
    scaled = ((tensor.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def fit_into(rgb: np.ndarray, width: int, height: int) -> np.ndarray:  # (H, W, 3) uint8
    """Resize keeping the aspect ratio, centred on black."""
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    new_w, new_h = max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BadInput(f"could not encode {path}", hint="report this as a bug")
    with atomic_write(path) as handle:
        handle.write(encoded.tobytes())




def images_to_array(images: np.ndarray) -> np.ndarray:
    """(B, H, W, C) uint8 -> (B, C, H, W) float32 in [-1, 1]: `to_tensor` in numpy."""
    array = images.transpose(0, 3, 1, 2).astype(np.float32)
    return array / np.float32(127.5) - np.float32(1.0)
