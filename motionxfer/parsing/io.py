"""Label maps on disk: a folder of per-frame PNGs from an external parser, and .npz sequences.

A folder holds one single-channel PNG per frame (palette or 8-bit greyscale, values = label
indices), sorted by file name; `read_label_folder` checks it against the video (frame count and
size, resizing nearest-neighbour when only the scale differs) and maps it onto the six classes. A `ParsingSequence` is the six-class result for a whole
video, saved as one compressed .npz.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from motionxfer.errors import BadInput
from motionxfer.io.files import atomic_path
from motionxfer.parsing.labels import CLASS_NAMES, NUM_CLASSES, map_labels

SCHEMA_VERSION = 2  # 2: image_size, the video's size (labels may be stored smaller)


def read_label_map(path: str | Path) -> np.ndarray:
    """One label-map PNG as an (H, W) integer array of label indices.

    Palette PNGs (what Self-Correction-Human-Parsing and most parsers write) are read as their
    indices, not their colours: OpenCV would expand the palette to RGB, so Pillow reads them.
    Raises BadInput for an unreadable file or one with colour channels.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            values = np.array(image)
    except (OSError, ValueError) as error:
        raise BadInput(f"cannot read {path}: {error}", hint="re-export it as an 8-bit PNG") from None
    if values.ndim == 3 or mode in ("RGB", "RGBA", "LA", "PA"):
        channels = values.shape[2] if values.ndim == 3 else 2
        raise BadInput(
            f"{path.name} has {channels} channels; label maps need one",
            hint="save the label indices (a palette or greyscale PNG), not the colour preview",
        )
    if values.dtype == bool:
        values = values.astype(np.uint8)
    return values


def capped_size(width: int, height: int, max_height: int | None) -> tuple[int, int]:
    """(width, height) shrunk to at most `max_height` rows, the aspect kept."""
    if max_height is None or height <= max_height:
        return width, height
    return max(1, round(width * max_height / height)), max_height


def fit_label_map(labels: np.ndarray, size: tuple[int, int], name: str = "a label map",
                  max_height: int | None = None) -> np.ndarray:
    """A label map (h, w) at the video's size (height, width), or at most `max_height` tall
    (`capped_size`): as it is when it already has that size, resized nearest-neighbour (labels
    are never blended) when only the scale differs from the video's (same aspect ratio, to a
    pixel), else BadInput."""
    height, width = size
    got_height, got_width = labels.shape
    if abs(got_width * height / got_height - width) > 1.0:
        raise BadInput(
            f"{name} is {got_width}x{got_height} but the video is {width}x{height} (another "
            "aspect ratio: a crop, not a resize)",
            hint="run the parser on full, uncropped frames of this video",
        )
    width, height = capped_size(width, height, max_height)
    if (got_height, got_width) == (height, width):
        return labels
    resized = cv2.resize(labels.astype(np.uint16 if labels.max() > 255 else np.uint8),
                         (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(labels.dtype)


def read_label_folder(
    folder: str | Path,
    expected_frames: int,
    expected_size: tuple[int, int],
    convention: str = "remot",
    max_height: int | None = None,
) -> np.ndarray:
    """Read a folder of label-map PNGs as a (T, H, W) uint8 array in the six classes.

    expected_size: (height, width) of the video. Maps at another size with the video's aspect
    ratio are resized nearest-neighbour (`fit_label_map`), to the video's size or, when it is
    taller than `max_height`, to that height (`capped_size`). Raises BadInput when the folder is
    missing or holds no PNGs, when the count differs from the video's frames, when a map has
    another aspect ratio or colour channels, or when a label is not in `convention` (lip, atr,
    cihp, remot / six).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"no folder {folder}", hint="pass the folder the parser wrote its PNGs to")
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise BadInput(f"{folder} holds no .png label maps",
                       hint="write one PNG per frame, named so they sort in frame order "
                       "(frame_000000.png, ...)")
    if len(paths) != expected_frames:
        raise BadInput(
            f"{folder} holds {len(paths)} label maps but the video has {expected_frames} frames",
            hint="parse every frame of the video (no skipped or extra frames), one PNG each",
        )
    width, height = capped_size(expected_size[1], expected_size[0], max_height)
    out = np.zeros((len(paths), height, width), np.uint8)
    for index, path in enumerate(paths):
        labels = fit_label_map(read_label_map(path), expected_size, path.name, max_height)
        try:
            out[index] = map_labels(labels, convention)
        except BadInput as error:
            raise BadInput(f"{path.name}: {error.message}", hint=error.hint) from None
    return out


@dataclass(frozen=True)
class ParsingSequence:
    """Six-class parsing of a whole video: labels (T, H, W) uint8, the method that made it
    (`geometry`, `colour_model`, `import:lip`, ...), the video's fps, `inputs`: the
    fingerprint of the video and poses it was made for (a project's cache compares it with the
    current one; empty outside a project), and `image_size`: the video's (width, height), which
    the labels may be smaller than (a project caps their height: a parse of every frame at
    1080p would not fit in memory); None: the labels' own size."""

    labels: np.ndarray
    method: str
    fps: float
    inputs: str = ""
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 3 or labels.dtype != np.uint8:
            raise BadInput(f"parsing labels must be (T, H, W) uint8, got {labels.shape} "
                           f"{labels.dtype}", hint="stack per-frame maps with np.stack")
        if labels.size and labels.max() >= NUM_CLASSES:
            raise BadInput(f"parsing labels hold {int(labels.max())}; the six classes are 0..5",
                           hint="map external labels with map_labels first")

    @property
    def video_scale(self) -> float:
        """Video pixels per label pixel (1.0 when the labels have the video's size)."""
        if self.image_size is None or not len(self.labels):
            return 1.0
        return self.image_size[1] / self.labels.shape[1]

    @property
    def frames_with_person(self) -> int:
        """Frames with at least one pixel that is not background."""
        return int(self.labels.reshape(len(self.labels), -1).any(axis=1).sum())

    def pixels_per_class(self) -> dict[str, int]:
        """Pixel count of each class over the whole video, by class name."""
        counts = np.bincount(self.labels.ravel(), minlength=NUM_CLASSES)
        return {name: int(count) for name, count in zip(CLASS_NAMES, counts)}

    def save(self, path: str | Path) -> None:
        """Write a compressed .npz (labels, method, fps, inputs, image size, class names, schema
        version), atomically: a failed write leaves the previous file."""
        extra = {} if self.image_size is None else {"image_size": np.array(self.image_size)}
        with atomic_path(path, ".npz") as temporary, open(temporary, "wb") as handle:
            np.savez_compressed(
                handle, labels=self.labels, method=np.array(self.method),
                fps=np.array(self.fps), inputs=np.array(self.inputs),
                class_names=np.array(CLASS_NAMES), schema_version=np.array(SCHEMA_VERSION),
                **extra,
            )

    @classmethod
    def load(cls, path: str | Path) -> ParsingSequence:
        """Read a .npz written by `save`. Raises BadInput for a missing file, another schema or
        other classes."""
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"no parsing file {path}", hint="compute or import the parsing first")
        with np.load(path, allow_pickle=False) as data:
            missing = {"labels", "method", "fps", "class_names", "schema_version"} - set(data.files)
            if missing:
                raise BadInput(f"{path} is not a parsing sequence (lacks {', '.join(sorted(missing))})",
                               hint="recompute the parsing")
            if int(data["schema_version"]) > SCHEMA_VERSION:
                raise BadInput(f"{path} has parsing schema {int(data['schema_version'])}, newer "
                               f"than this tool's {SCHEMA_VERSION}", hint="upgrade motionxfer")
            if tuple(str(n) for n in data["class_names"]) != CLASS_NAMES:
                raise BadInput(f"{path} uses classes {list(data['class_names'])}",
                               hint="recompute the parsing in REMOT's six classes")
            inputs = str(data["inputs"]) if "inputs" in data.files else ""
            image_size = (tuple(int(v) for v in data["image_size"])
                          if "image_size" in data.files else None)
            return cls(labels=data["labels"], method=str(data["method"]), fps=float(data["fps"]),
                       inputs=inputs, image_size=image_size)
