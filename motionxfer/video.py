"""Video reading and writing with PyAV."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a video file without decoding it all.

    width/height are of the frame as displayed, after `rotation` (degrees clockwise, from the
    container's display matrix) is applied. `frame_count` is exact when the container knows it and
    estimated from duration x fps otherwise (`frame_count_exact` says which).
    """

    path: Path
    sha256: str
    fps: float  # average frame rate
    frame_count: int
    frame_count_exact: bool
    width: int
    height: int
    rotation: int  # 0, 90, 180 or 270
    duration: float  # seconds
    variable_frame_rate: bool
    has_audio: bool
    codec: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> VideoInfo:
        return VideoInfo(**{**data, "path": Path(data["path"])})
