"""Fitting pictures to the animator's square frames, and reading a source image.

The animator works on S x S frames (S = AnimatorConfig.image_size). A picture of another aspect
is either centre-cropped to a square (`crop`: fills the frame, cuts the sides or top and bottom)
or padded to one by repeating its border pixels (`pad`: keeps the whole picture). `auto` crops
when the picture is nearly square (the long side at most `AUTO_CROP_ASPECT` x the short one) and
pads otherwise, so that a portrait photo keeps the head and the feet. Pure functions of arrays,
except `read_image`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from motionxfer.errors import BadInput

FITS = ("auto", "crop", "pad")
AUTO_CROP_ASPECT = 1.25  # auto: crop up to this aspect (long / short side), pad beyond it
MAX_ASPECT = 3.0  # beyond this the picture is refused: a square crop or pad of it is useless
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Fitting:
    """What was done to a picture to make it the model's square frame."""

    original_size: tuple[int, int]  # (width, height)
    size: int  # the square's side
    mode: str  # "crop", "pad" or "resize" (already square)
    converted: str = ""  # e.g. "grayscale -> RGB", "RGBA composited on white"

    def describe(self) -> str:
        width, height = self.original_size
        what = {"crop": "centre-cropped to a square and resized",
                "pad": "padded to a square (border pixels repeated) and resized",
                "resize": "resized"}[self.mode]
        text = f"{width}x{height} {what} to {self.size}x{self.size}"
        return f"{text} ({self.converted})" if self.converted else text


def choose_fit(width: int, height: int, fit: str) -> str:
    if fit not in FITS:
        raise BadInput(f"no fit {fit!r}", hint=f"the fits are: {', '.join(FITS)}")
    if width == height:
        return "resize"
    if fit != "auto":
        return fit
    return "crop" if max(width, height) / min(width, height) <= AUTO_CROP_ASPECT else "pad"


def check_picture_shape(width: int, height: int, size: int, what: str) -> None:
    """BadInput for a picture the model cannot use: too small, or far from square."""
    if min(width, height) < size // 2:
        raise BadInput(f"{what} is {width}x{height}, too small for the animator's "
                       f"{size}x{size} frames",
                       hint=f"give a picture at least {size // 2} px on its short side")
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise BadInput(f"{what} is {width}x{height} (aspect {aspect:.1f}:1); the animator was "
                       "trained on square frames",
                       hint="crop it around the person to roughly square (up to "
                       f"{MAX_ASPECT:.0f}:1 is padded)")


def fit_square(rgb: np.ndarray, size: int, fit: str = "auto") -> tuple[np.ndarray, Fitting]:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 and what was done."""
    height, width = rgb.shape[:2]
    mode = choose_fit(width, height, fit)
    if mode == "crop":
        side = min(width, height)
        top, left = (height - side) // 2, (width - side) // 2
        square = rgb[top:top + side, left:left + side]
    elif mode == "pad":
        side = max(width, height)
        top, left = (side - height) // 2, (side - width) // 2
        square = cv2.copyMakeBorder(rgb, top, side - height - top, left, side - width - left,
                                    cv2.BORDER_REPLICATE)
    else:
        square = rgb
    if square.shape[0] != size:
        shrinking = square.shape[0] > size
        square = cv2.resize(square, (size, size),
                            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return np.ascontiguousarray(square), Fitting((width, height), size, mode)


def to_rgb8(image: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    """Any decoded picture -> (H, W, 3) uint8 RGB, and the conversion done ("" for none).

    Grayscale is repeated into three channels; an alpha channel is composited on white; 16-bit
    pictures are scaled to 8 bits. The input is in OpenCV's channel order (BGR / BGRA)."""
    notes = []
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
        notes.append("16-bit -> 8-bit")
    elif image.dtype != np.uint8:
        raise BadInput(f"{what} has {image.dtype} pixels", hint="save it as an 8-bit PNG or JPEG")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        notes.append("grayscale -> RGB")
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2), \
            ", ".join(notes)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise BadInput(f"{what} has {image.shape} pixels", hint="give an RGB picture")
    if image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        image = (image[..., :3] * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
        notes.append("RGBA composited on white")
    return np.ascontiguousarray(image[..., ::-1]), ", ".join(notes)


def read_image(path: str | Path) -> tuple[np.ndarray, str]:
    """The picture at `path` as (H, W, 3) uint8 RGB, and the conversion done."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"no image at {path}", hint="check the path")
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise BadInput(f"{path} is not an image OpenCV can read",
                       hint="pass a PNG or JPEG photo (a video's first frame: export it first)")
    return to_rgb8(image, str(path))
