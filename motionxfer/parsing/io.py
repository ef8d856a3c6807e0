"""Label maps on disk: a folder of per-frame PNGs from an external parser, and .npz sequences.

A folder holds one single-channel PNG per frame (palette or 8-bit greyscale, values = label
indices), sorted by file name; `read_label_folder` checks it against the video (frame count and
size) and maps it onto the six classes. A `ParsingSequence` is the six-class result for a whole
video, saved as one compressed .npz.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from motionxfer.errors import BadInput
from motionxfer.parsing.labels import CLASS_NAMES, NUM_CLASSES, map_labels

SCHEMA_VERSION = 1


def read_label_folder(
    folder: str | Path,
    expected_frames: int,
    expected_size: tuple[int, int],
    convention: str = "remot",
) -> np.ndarray:
    """Read a folder of label-map PNGs as a (T, H, W) uint8 array in the six classes.

    expected_size: (height, width) of the video. Raises BadInput when the folder is missing or
    holds no PNGs, when the count or a size differs from the video, when a PNG has colour
    channels, or when a label is not in `convention` (lip, atr, cihp, remot).
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
    height, width = expected_size
    out = np.zeros((len(paths), height, width), np.uint8)
    for index, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # palette PNGs read as indices
        if image is None:
            raise BadInput(f"cannot read {path}", hint="re-export it as an 8-bit PNG")
        if image.ndim == 3:
            raise BadInput(
                f"{path.name} has {image.shape[2]} channels; label maps need one",
                hint="save the label indices (a palette or greyscale PNG), not the colour preview",
            )
        if image.shape != (height, width):
            raise BadInput(
                f"{path.name} is {image.shape[1]}x{image.shape[0]} but the video is "
                f"{width}x{height}",
                hint="run the parser on full frames at the video's resolution, or resize the "
                "maps with nearest-neighbour interpolation",
            )
        try:
            out[index] = map_labels(image, convention)
        except BadInput as error:
            raise BadInput(f"{path.name}: {error.message}", hint=error.hint) from None
    return out


@dataclass(frozen=True)
class ParsingSequence:
    """Six-class parsing of a whole video: labels (T, H, W) uint8, the method that made it
    (`geometry`, `colour_model`, `import:lip`, ...), and the video's fps."""

    labels: np.ndarray
    method: str
    fps: float

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 3 or labels.dtype != np.uint8:
            raise BadInput(f"parsing labels must be (T, H, W) uint8, got {labels.shape} "
                           f"{labels.dtype}", hint="stack per-frame maps with np.stack")
        if labels.size and labels.max() >= NUM_CLASSES:
            raise BadInput(f"parsing labels hold {int(labels.max())}; the six classes are 0..5",
                           hint="map external labels with map_labels first")

    def save(self, path: str | Path) -> None:
        """Write a compressed .npz (labels, method, fps, class names, schema version)."""
        np.savez_compressed(
            Path(path), labels=self.labels, method=np.array(self.method), fps=np.array(self.fps),
            class_names=np.array(CLASS_NAMES), schema_version=np.array(SCHEMA_VERSION),
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
            return cls(labels=data["labels"], method=str(data["method"]), fps=float(data["fps"]))
