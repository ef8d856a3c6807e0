"""Video reading and writing with PyAV.

Frames are streamed: `read_frames` decodes one frame at a time and never holds the whole video in
memory. Every frame comes out as (H, W, 3) uint8 RGB in the orientation a player shows it (the
container's display rotation applied). Times are seconds from the first frame of the video stream.

`VideoWriter` encodes H.264 (libx264, yuv420p; or another encoder of `ENCODERS`, such as libx265
or NVENC, see `check_encoder`) into a temporary file next to the destination and renames it on
success; it can copy the audio of another file without re-encoding it.

Bad input raises `BadVideo` with a hint; nothing here lets a raw PyAV exception escape for a file
the user gave us.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import av
import av.container
import av.stream
import av.video.stream
import numpy as np

from motionxfer.errors import BadInput, BadVideo
from motionxfer.io.files import atomic_path, sha256_file

logger = logging.getLogger(__name__)

VFR_SCAN_PACKETS = 300  # probe reads this many packet timestamps to detect a variable frame rate
TIME_EPSILON = 1e-4  # seconds; far below any frame interval, absorbs float rounding of timestamps

_HINT_REEXPORT = "the file is damaged or incomplete: copy or export it again"
_HINT_FORMAT = (
    "pass a video file (MP4, MOV, MKV, WebM, AVI); if it is one, it may be truncated or damaged: "
    "copy or export it again"
)
_MP4_SUFFIXES = {".mp4", ".m4v", ".mov"}
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")  # containers that hold H.264 / H.265 and AAC
# The encoders VideoWriter knows how to drive: software H.264 / H.265, and the hardware ones that
# PyAV's FFmpeg may carry (they open only on a machine with that hardware and its driver).
ENCODERS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc", "h264_qsv", "hevc_qsv",
            "h264_amf", "hevc_amf", "h264_videotoolbox", "hevc_videotoolbox")


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


@dataclass(frozen=True)
class Frame:
    """One decoded frame, as displayed."""

    index: int  # 0 for the first frame yielded (within the trimmed range)
    time: float  # seconds from the start of the video
    rgb: np.ndarray  # (H, W, 3) uint8, displayed orientation


# --------------------------------------------------------------------------------------------
# Pure helpers


def rotation_from_display_matrix(matrix: Sequence[int]) -> int:
    """Clockwise display rotation (0, 90, 180 or 270) of an FFmpeg/ISO-BMFF display matrix.

    `matrix` is the 9 int32 values of `AV_FRAME_DATA_DISPLAYMATRIX` (row-major a b u / c d v /
    x y w, a..d in 16.16 fixed point). A phone held upright writes a=0, b=1, c=-1, d=0: the stored
    landscape frame is shown rotated 90 degrees clockwise. Raises ValueError for a mirrored matrix
    or an angle that is not a multiple of 90 degrees.
    """
    if len(matrix) != 9:
        raise ValueError(f"a display matrix has 9 values, got {len(matrix)}")
    a, b, c, d = (value / 65536.0 for value in (matrix[0], matrix[1], matrix[3], matrix[4]))
    if a * d - b * c < 0:
        raise ValueError("the display matrix mirrors the picture")
    if math.hypot(a, b) == 0:
        raise ValueError("the display matrix is degenerate")
    angle = math.degrees(math.atan2(b, a)) % 360.0
    quarter = round(angle / 90.0)
    if abs(angle - 90.0 * quarter) > 1.0:
        raise ValueError(f"display rotation of {angle:.1f} degrees is not a multiple of 90")
    return (90 * quarter) % 360


def rotation_from_tag(value: str) -> int:
    """Clockwise rotation from a legacy `rotate` metadata tag ("90", "-90", "180.0")."""
    degrees = float(value) % 360.0
    quarter = round(degrees / 90.0)
    if abs(degrees - 90.0 * quarter) > 1.0:
        raise ValueError(f"rotate tag {value!r} is not a multiple of 90 degrees")
    return (90 * quarter) % 360


def rotate_to_display(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate a stored frame (H, W, C) clockwise by `rotation` degrees, as a player would."""
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, got {rotation}")
    if rotation == 0:
        return rgb
    # np.rot90 turns counterclockwise for positive k.
    return np.ascontiguousarray(np.rot90(rgb, k=-rotation // 90))


def displayed_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """(width, height) of a stored frame once shown with `rotation`."""
    return (height, width) if rotation in (90, 270) else (width, height)


REORDER_DEPTH = 16  # the most frames a decoder may hold back for reordering (H.264 / HEVC)


def is_variable_frame_rate(
    timestamps: Sequence[int], complete: bool = True, relative_tolerance: float = 0.05
) -> bool:
    """Whether presentation timestamps (stream ticks, in decode order) have unequal intervals.

    An interval counts as different when it is off the median interval by more than one tick
    (rounding in coarse time bases such as 1/1000 s) and by more than `relative_tolerance`.
    `complete=False`: the timestamps are the first packets of a longer stream; with B-frames the
    next packets can still fill gaps among the last `REORDER_DEPTH` presentation times, so those
    are left out.
    """
    unique = np.unique(np.asarray(timestamps, dtype=np.int64))
    if not complete:
        unique = unique[:-REORDER_DEPTH]
    if len(unique) < 3:
        return False
    intervals = np.diff(unique)
    median = float(np.median(intervals))
    tolerance = max(1.0, relative_tolerance * median)
    return bool(np.max(np.abs(intervals - median)) > tolerance)


Item = TypeVar("Item")


def resample_to_rate(
    timed_items: Iterable[tuple[float, Item]],
    fps: float,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[tuple[int, float, Item]]:
    """Resample timestamped items to a constant rate: yields (index, time, item).

    Output k is at time `start + k / fps` and carries the input item whose timestamp is nearest
    (ties go to the earlier item), so items are duplicated or dropped as needed. Inputs must come
    in increasing time; they may start before `start` (they are then only candidates for the
    first outputs). The output stops before `end`, or where the last item stops being shown: its
    timestamp plus the interval that preceded it (1 / fps when there was only one item).
    Streams: holds at most two items.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    period = 1.0 / fps
    index = 0
    previous: tuple[float, Item] | None = None
    last_interval = period

    def output_time() -> float:
        return start + index * period

    def before_end(time: float) -> bool:
        return end is None or time < end - TIME_EPSILON

    for time, item in timed_items:
        if previous is not None:
            previous_time, previous_item = previous
            if time <= previous_time:
                raise ValueError(f"timestamps must increase: {time} after {previous_time}")
            midpoint = (previous_time + time) / 2.0
            while output_time() <= midpoint + TIME_EPSILON * 0.01 and before_end(output_time()):
                yield index, output_time(), previous_item
                index += 1
            if not before_end(output_time()):
                return
            last_interval = time - previous_time
        previous = (time, item)

    if previous is None:
        return
    last_time, last_item = previous
    while output_time() < last_time + last_interval - TIME_EPSILON and before_end(output_time()):
        yield index, output_time(), last_item
        index += 1


def encoder_rate(fps: float | Fraction) -> Fraction:
    """The exact frame rate to give the encoder: 29.97002997 -> 30000/1001, 30.0 -> 30."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
        rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


# --------------------------------------------------------------------------------------------
# Opening and inspecting


def _checked_file(path: str | os.PathLike[str]) -> Path:
    """The path as a Path; BadVideo when it is missing, a folder, or empty."""
    path = Path(path)
    if not path.exists():
        raise BadVideo(f"{path} does not exist", hint="check the path (quote it if it has spaces)")
    if path.is_dir():
        raise BadVideo(f"{path} is a folder, not a video file", hint="pass the video file itself")
    if path.stat().st_size == 0:
        raise BadVideo(f"{path} is empty (0 bytes)", hint=_HINT_REEXPORT)
    return path


def _open_input(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), "r")
    except av.error.FFmpegError as error:
        raise BadVideo(f"{path} is not a video FFmpeg can read ({error.strerror})",
                       hint=_HINT_FORMAT) from error
    except PermissionError as error:
        raise BadVideo(f"cannot read {path}: permission denied",
                       hint="check the file's permissions") from error
    format_name = container.format.name
    if format_name == "image2" or format_name.endswith("_pipe"):
        container.close()
        kind = format_name.removesuffix("_pipe")
        raise BadVideo(f"{path} is a still image ({kind}), not a video", hint="pass a video file")
    return container


def _video_stream(
    container: av.container.InputContainer, path: Path
) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["no streams"]
        raise BadVideo(f"{path} has no video stream (it has: {', '.join(kinds)})",
                       hint="pass a video file, not an audio file; if it is a video, it is "
                       "damaged or cut short: copy or export it again")
    return container.streams.video[0]


def _origin_ticks(stream: av.stream.Stream) -> int:
    """The stream's first timestamp, in its time base: time 0 of our timeline."""
    return stream.start_time if stream.start_time is not None else 0


def _rotation(stream: av.video.stream.VideoStream, first_frame: av.VideoFrame, path: Path) -> int:
    """Clockwise rotation from the decoded frame's display matrix, else a legacy `rotate` tag."""
    for side_data in first_frame.side_data:
        if side_data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            matrix = np.frombuffer(bytes(side_data), dtype=np.int32)  # native byte order
            try:
                return rotation_from_display_matrix(matrix.tolist())
            except ValueError as error:
                raise BadVideo(f"{path}: {error}", hint="re-export the video without the mirror or "
                               "odd rotation, e.g. with `ffmpeg -i in.mp4 out.mp4`") from error
    for key, value in stream.metadata.items():
        if key.lower() == "rotate":
            try:
                return rotation_from_tag(value)
            except ValueError as error:
                raise BadVideo(f"{path}: {error}", hint="re-export the video upright, e.g. with "
                               "`ffmpeg -i in.mp4 out.mp4`") from error
    return 0


def _truncation(stream: av.video.stream.VideoStream, path: Path) -> str | None:
    """What is missing when the container's sample index points past the end of the file."""
    file_size = path.stat().st_size
    ends = [entry.pos + entry.size for entry in stream.index_entries if entry.pos >= 0]
    if ends and max(ends) > file_size:
        present = sum(1 for end in ends if end <= file_size)
        return f"its index lists {len(ends)} frames but only {present} are in the file"
    return None


def _check_complete(stream: av.video.stream.VideoStream, path: Path) -> None:
    """BadVideo when the file is cut short (for containers with an index: MP4, MOV)."""
    missing = _truncation(stream, path)
    if missing:
        raise BadVideo(
            f"{path} is truncated: {missing}",
            hint=f"{_HINT_REEXPORT} (read_frames can still decode the frames that are there)",
        )


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Inspect a video: hash, frame rate, frame count, displayed size, rotation, VFR, audio.

    Decodes only the first frame (to prove the video decodes and to read its display matrix) and
    reads the timestamps of the first `VFR_SCAN_PACKETS` packets. Raises BadVideo for a missing,
    empty, truncated, undecodable or non-video file.
    """
    path = _checked_file(path).absolute()  # the manifest must not depend on the working folder
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        _check_complete(stream, path)
        timestamps: list[int] = []
        first_frame: av.VideoFrame | None = None
        scanned_all = True
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None and len(timestamps) < VFR_SCAN_PACKETS:
                    timestamps.append(packet.pts)
                if first_frame is None:
                    # A packet that does not decode: the next one may.
                    with contextlib.suppress(av.error.InvalidDataError):
                        frames = packet.decode()
                        first_frame = frames[0] if frames else None
                if first_frame is not None and len(timestamps) >= VFR_SCAN_PACKETS:
                    scanned_all = False
                    break
        except av.error.InvalidDataError as error:
            raise BadVideo(f"{path} is damaged or truncated after {len(timestamps)} packets "
                           f"({error.strerror})", hint=_HINT_REEXPORT) from error
        if first_frame is None:
            raise BadVideo(f"{path} has no decodable video frames", hint=_HINT_REEXPORT)

        rotation = _rotation(stream, first_frame, path)
        rate = stream.average_rate or stream.guessed_rate
        if not rate or rate <= 0:
            raise BadVideo(f"{path} does not state a frame rate",
                           hint="re-encode it with a frame rate, e.g. `ffmpeg -i in -r 30 out.mp4`")
        fps = float(rate)
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = (stream.frames or 0) / fps
        exact = stream.frames > 0
        frame_count = stream.frames if exact else max(1, round(duration * fps))
        width, height = displayed_size(stream.codec_context.width, stream.codec_context.height,
                                       rotation)
        return VideoInfo(
            path=path,
            sha256=sha256_file(path),
            fps=fps,
            frame_count=frame_count,
            frame_count_exact=exact,
            width=width,
            height=height,
            rotation=rotation,
            duration=duration,
            variable_frame_rate=is_variable_frame_rate(timestamps, complete=scanned_all),
            has_audio=bool(container.streams.audio),
            codec=stream.codec_context.name,
        )


def count_frames(path: str | os.PathLike[str]) -> int:
    """The number of video packets (= frames for video codecs) in the file, without decoding.

    Reads the whole file. A truncated file counts the packets up to where it is cut (the last,
    partial packet included when the container's index still lists it).
    """
    path = _checked_file(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        count = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    count += 1
        except av.error.InvalidDataError as error:
            logger.warning("%s: stopped counting at packet %d: %s", path, count, error.strerror)
        return count


# --------------------------------------------------------------------------------------------
# Reading


def _decoded(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> Iterator[av.VideoFrame]:
    """Decoded frames in display order, up to the first damaged or missing packet.

    A cut file (the usual damage: a copy that did not finish) ends in a partial packet; the
    frames shown before it are good, the ones after it have a gap before them and may refer to
    the missing data, so reading stops at the last frame before the damage, with a logged
    warning. Raises BadVideo only when no frame at all decodes.
    """
    decoded = 0
    damaged_at: int | None = None  # pts of the first damaged packet, where known
    problem = ""
    drained = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # demux ends with an empty packet that drains the decoder
                drained = True
            elif packet.is_corrupt:  # e.g. the last packet of a cut file, only partly there
                damaged_at, problem = packet.pts, "a damaged packet"
                break
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as error:
                damaged_at = packet.pts
                problem = f"a packet that does not decode ({error.strerror})"
                break
            for frame in frames:
                decoded += 1
                yield frame
    except av.error.InvalidDataError as error:
        problem = f"data missing ({error.strerror})"
    if problem:
        if not drained:
            # Drain the frames decoded before the damage; a decoder that fails even at that (or
            # was drained already) has nothing more to give.
            with contextlib.suppress(av.error.EOFError, av.error.InvalidDataError):
                for frame in stream.decode(None):
                    if damaged_at is None or frame.pts is None or frame.pts < damaged_at:
                        decoded += 1
                        yield frame
        if decoded:
            logger.warning("%s: stopped after %d frames at %s: the rest of the file is cut or "
                           "damaged", path, decoded, problem)
    if decoded == 0:
        raise BadVideo(f"{path} has no decodable video frames", hint=_HINT_REEXPORT)


def _timed_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    nominal_period: float,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """(seconds from the start of the video, frame), times strictly increasing."""
    origin = _origin_ticks(stream)
    time_base = stream.time_base
    previous: float | None = None
    for frame in _decoded(container, stream, path):
        if frame.pts is not None:
            time = float((frame.pts - origin) * time_base)
        else:
            time = 0.0 if previous is None else previous + nominal_period
        if previous is not None and time <= previous:
            logger.warning("%s: dropped a frame whose timestamp %.4f s does not follow %.4f s",
                           path, time, previous)
            continue
        previous = time
        yield time, frame


def timeline_fps(info: VideoInfo) -> float | None:
    """The `fps` to give `read_frames` so that a video's frames line up with its poses and audio.

    Every stage (pose extraction, the frame cache, transfer, preview) reads a video through this,
    and the poses, the frames and the output count frame k as `start + k / info.fps` seconds.
    None (the frames as stored) at a constant frame rate; for a variable frame rate the average
    rate, resampled by presentation time (the frame shown at each tick, duplicated or dropped),
    so the timing of the source is kept instead of drifting by every irregular interval.
    """
    return info.fps if info.variable_frame_rate else None


def read_frames(
    path: str | os.PathLike[str],
    start: float | None = None,
    end: float | None = None,
    fps: float | None = None,
) -> Iterator[Frame]:
    """Decode frames of [start, end) seconds, in displayed orientation, one at a time.

    `fps=None` yields the frames as stored with their real timestamps (a variable frame rate stays
    variable); a number resamples to that constant rate by timestamp (nearest frame, duplicating or
    dropping), with output times `start + k / fps`. `Frame.index` counts from 0 in the range.

    Missing, empty and non-video files raise BadVideo here, before the first frame; a file that is
    cut mid-way yields its good frames and stops (with a logged warning); BadVideo if none decodes.
    A range with no frame in it raises BadInput.
    """
    path = _checked_file(path)
    begin = 0.0 if start is None else float(start)
    if not (math.isfinite(begin) and begin >= 0):
        raise BadInput(f"start must be a time of 0 s or more, got {start}",
                       hint="pass a start of 0 or later")
    if end is not None and not end > begin:
        raise BadInput(f"end ({end} s) must come after start ({begin} s)",
                       hint="swap or fix the times")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise BadInput(f"fps must be a positive number, got {fps}", hint="pass e.g. 30")
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
    except BadVideo:
        container.close()
        raise
    missing = _truncation(stream, path)
    if missing:
        logger.warning("%s is truncated (%s): reading the frames that are there", path, missing)
    return _frames(container, stream, path, begin, end, fps)


def _frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    start: float,
    end: float | None,
    fps: float | None,
) -> Iterator[Frame]:
    with container:
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        nominal_period = 1.0 / float(rate) if rate else 1.0 / 30.0
        margin = nominal_period if fps is None else max(nominal_period, 1.0 / fps)

        timed = _timed_frames(container, stream, path, nominal_period)
        if start - margin > 0:  # seek to the keyframe before, then decode up to `start`
            target = _origin_ticks(stream) + int((start - margin) / stream.time_base)
            container.seek(target, stream=stream, backward=True)
            timed = _timed_frames(container, stream, path, nominal_period)
            first = next(timed, None)
            if first is not None and first[0] > start - margin + TIME_EPSILON:
                # The seek landed after the keyframe we need (some formats seek imprecisely):
                # decode from the beginning instead.
                container.seek(_origin_ticks(stream), stream=stream, backward=True)
                timed = _timed_frames(container, stream, path, nominal_period)
            elif first is not None:
                timed = _chain_one(first, timed)

        rotation: int | None = None
        count = 0
        if fps is None:
            for time, frame in timed:
                if end is not None and time >= end - TIME_EPSILON:
                    break
                if time < start - TIME_EPSILON:
                    continue
                if rotation is None:
                    rotation = _rotation(stream, frame, path)
                yield Frame(count, time, _to_rgb(frame, rotation))
                count += 1
        else:
            converted: tuple[av.VideoFrame, np.ndarray] | None = None
            for index, time, frame in resample_to_rate(timed, fps, start, end):
                if rotation is None:
                    rotation = _rotation(stream, frame, path)
                if converted is None or converted[0] is not frame:
                    converted = (frame, _to_rgb(frame, rotation))
                    rgb = converted[1]
                else:  # a duplicated frame: its own copy, so that callers may draw on it
                    rgb = converted[1].copy()
                yield Frame(index, time, rgb)
                count += 1
        if count == 0:
            if stream.duration:
                length: float | None = float(stream.duration * stream.time_base)
            else:
                length = container.duration / av.time_base if container.duration else None
            length_text = f"the video is {length:.2f} s long" if length else "the video is shorter"
            raise BadInput(f"no frames of {path} between {start:.3f} s and "
                           f"{'the end' if end is None else f'{end:.3f} s'} ({length_text})",
                           hint="pick a time range inside the video")


def _chain_one(
    first: tuple[float, av.VideoFrame], rest: Iterator[tuple[float, av.VideoFrame]]
) -> Iterator[tuple[float, av.VideoFrame]]:
    yield first
    yield from rest


def _to_rgb(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    return rotate_to_display(frame.to_ndarray(format="rgb24"), rotation)  # (H, W, 3) uint8


# --------------------------------------------------------------------------------------------
# Writing


class _AudioCopier:
    """Copies the audio packets of [start, end) seconds of another file, shifted to start at 0."""

    def __init__(self, output: av.container.OutputContainer, source_path: Path,
                 start: float, end: float | None) -> None:
        self.source_path = source_path
        self.source = _open_input(source_path)
        self.output = output
        self.in_stream = self.source.streams.audio[0] if self.source.streams.audio else None
        self.out_stream: av.stream.Stream | None = None
        self._pending: av.Packet | None = None
        self._done = self.in_stream is None
        self.packets_copied = 0
        if self.in_stream is None:
            return
        time_base = self.in_stream.time_base
        # Same timeline as read_frames: time 0 is the first frame of the file's video stream.
        if self.source.streams.video:
            video = self.source.streams.video[0]
            origin_seconds = float(_origin_ticks(video) * video.time_base)
        else:
            origin_seconds = float(_origin_ticks(self.in_stream) * time_base)
        self.start_ticks = round((start + origin_seconds) / time_base)
        self.end_ticks = None if end is None else round((end + origin_seconds) / time_base)
        self.out_stream = output.add_stream_from_template(self.in_stream)
        if start > 0:
            self.source.seek(self.start_ticks, stream=self.in_stream, backward=True)
        self._packets = self.source.demux(self.in_stream)

    def _next_packet(self) -> av.Packet | None:
        while not self._done:
            try:
                packet = next(self._packets, None)
            except av.error.InvalidDataError as error:
                raise BadVideo(f"the audio of {self.source_path} is damaged ({error.strerror})",
                               hint=_HINT_REEXPORT) from error
            if packet is None:
                self._done = True
                return None
            if not packet.size or packet.pts is None:
                continue
            # Keep the packet that ends at the start: AAC needs the previous frame to decode it.
            if packet.pts + (packet.duration or 0) < self.start_ticks:
                continue
            if self.end_ticks is not None and packet.pts >= self.end_ticks:
                self._done = True
                return None
            return packet
        return None

    def copy_until(self, seconds: float | None) -> None:
        """Mux the audio packets that start at or before `seconds` of output time (None: all)."""
        if self.in_stream is None:
            return
        time_base = self.in_stream.time_base
        while True:
            packet = self._pending or self._next_packet()
            self._pending = None
            if packet is None:
                return
            if seconds is not None and float((packet.pts - self.start_ticks) * time_base) > seconds:
                self._pending = packet
                return
            packet.pts -= self.start_ticks
            if packet.dts is not None:
                packet.dts -= self.start_ticks
            packet.stream = self.out_stream
            self.output.mux(packet)
            self.packets_copied += 1

    def close(self) -> None:
        self.source.close()


def encoder_options(codec: str, crf: int) -> dict[str, str]:
    """The FFmpeg options that give `codec` the constant quality `crf` (0-51, lower is better):
    x264/x265's crf, NVENC's constant-quality VBR, QSV's global quality, AMF's constant QP."""
    if codec in ("libx264", "libx265"):
        options = {"crf": str(crf)}
        if codec == "libx265":
            options["x265-params"] = "log-level=error"
        return options
    if codec.endswith("_nvenc"):
        return {"rc": "vbr", "cq": str(max(crf, 1)), "b": "0"}  # cq 0 means "automatic"
    if codec.endswith("_qsv"):
        return {"global_quality": str(max(crf, 1))}
    if codec.endswith("_amf"):
        return {"rc": "cqp", "qp_i": str(crf), "qp_p": str(crf)}
    if codec.endswith("_videotoolbox"):
        return {"q:v": str(round(100 - crf * 100 / 51))}  # 0-100, higher is better
    raise ValueError(f"no options for the encoder {codec}")


def _encoder_pix_fmt(codec: av.Codec) -> str:
    formats = [f.name for f in (codec.video_formats or [])]
    return "yuv420p" if not formats or "yuv420p" in formats else formats[0]


def encoder_problem(codec: str, width: int = 256, height: int = 256) -> str | None:
    """Why `codec` cannot encode here (None: it can): not one of `ENCODERS`, missing from this
    PyAV's FFmpeg, or failing to open (a hardware encoder without its device or driver)."""
    if codec not in ENCODERS:
        return f"motionxfer does not drive the encoder {codec!r}"
    if codec not in av.codecs_available:
        return f"this PyAV's FFmpeg has no {codec} encoder"
    try:
        found = av.Codec(codec, "w")
        context = av.CodecContext.create(found)
        context.width, context.height = width, height
        context.pix_fmt = _encoder_pix_fmt(found)
        context.time_base = Fraction(1, 30)
        context.framerate = Fraction(30, 1)
        context.options = encoder_options(codec, 23)
        context.open()
    except (av.error.FFmpegError, ValueError, OSError) as error:
        return f"{codec} does not open here ({error})"
    return None


def available_encoders() -> list[str]:
    """The encoders of `ENCODERS` that open on this machine."""
    return [codec for codec in ENCODERS if encoder_problem(codec) is None]


def check_encoder(codec: str) -> None:
    """Raise `BadInput` naming the encoders that work here when `codec` does not."""
    problem = encoder_problem(codec)
    if problem is not None:
        raise BadInput(f"cannot encode with {codec}: {problem}",
                       hint="use one of those that work here: "
                       + ", ".join(available_encoders()))


def check_video_name(path: str | os.PathLike[str]) -> None:
    """`path` must end in a container that VideoWriter writes (`VIDEO_SUFFIXES`)."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise BadInput(
            f"cannot write a video named {Path(path).name}: "
            + (f"{suffix} files cannot hold H.264/H.265 video" if suffix else "it has no extension"),
            hint="name the output " + " or ".join(VIDEO_SUFFIXES[:1] + VIDEO_SUFFIXES[2:])
            + f", e.g. {Path(path).with_suffix('.mp4').name}",
        )


class VideoWriter:
    """Write RGB frames as H.264 (libx264, yuv420p) or with another encoder of `ENCODERS` (`codec`,
    at the quality `crf`, see `encoder_options`), atomically, optionally with copied audio.

        with VideoWriter("out.mp4", fps=30, width=256, height=256, audio_from=source) as writer:
            for rgb in frames:
                writer.write(rgb)  # (H, W, 3) uint8

    The file appears at `path` only when the block ends without an exception. `audio_from`: a file
    whose first audio stream is copied without re-encoding for [audio_start, audio_end) seconds
    (the timeline of `read_frames` on that file), shifted to start at 0; a file without audio adds
    none (`audio_copied` tells). Width and height must be even (yuv420p).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        width: int,
        height: int,
        crf: int = 18,
        audio_from: str | os.PathLike[str] | None = None,
        audio_start: float = 0.0,
        audio_end: float | None = None,
        codec: str = "libx264",
    ) -> None:
        self.path = Path(path)
        check_video_name(self.path)
        if codec != "libx264":
            check_encoder(codec)
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise BadInput(f"cannot encode {width}x{height} frames as H.264 yuv420p: width and "
                           f"height must be positive and even",
                           hint=f"crop or pad the frames to an even size, e.g. "
                           f"{width - width % 2}x{height - height % 2}")
        if not 0 <= crf <= 51:
            raise BadInput(f"crf must be between 0 and 51, got {crf}",
                           hint="18 is visually lossless")
        if audio_start < 0 or (audio_end is not None and audio_end <= audio_start):
            raise BadInput(f"bad audio range [{audio_start}, {audio_end}) s",
                           hint="audio_start >= 0 and audio_end after it")
        try:
            self.rate = encoder_rate(fps)
        except ValueError as error:
            raise BadInput(str(error), hint="pass the frame rate, e.g. 30") from error
        self.width, self.height = width, height
        self.frames_written = 0
        self._closed = False
        self._stack = contextlib.ExitStack()
        self._audio: _AudioCopier | None = None
        try:
            self._temporary = self._stack.enter_context(atomic_path(self.path))
            # MP4/MOV: the index goes before the frames, so a cut copy keeps its first frames.
            faststart = self.path.suffix.lower() in _MP4_SUFFIXES
            options = {"movflags": "+faststart"} if faststart else {}
            try:
                self._output = av.open(str(self._temporary), "w", options=options)
            except (av.error.FFmpegError, ValueError) as error:
                raise BadInput(f"cannot write a video named {self.path.name} ({error})",
                               hint="use the .mp4 extension") from error
            self._stack.callback(self._output.close)
            self._stream = self._output.add_stream(codec, rate=self.rate,
                                                   options=encoder_options(codec, crf))
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = _encoder_pix_fmt(av.Codec(codec, "w"))
            if codec.startswith("hevc") or codec == "libx265":
                self._stream.codec_tag = "hvc1"  # H.265 in MP4 that QuickTime and Safari play
            if audio_from is not None:
                self._audio = _AudioCopier(self._output, _checked_file(audio_from),
                                           audio_start, audio_end)
                self._stack.callback(self._audio.close)
        except BaseException as error:
            self._stack.__exit__(type(error), error, error.__traceback__)
            raise

    @property
    def audio_copied(self) -> bool:
        """Whether an audio stream is being copied into the output."""
        return self._audio is not None and self._audio.out_stream is not None

    def write(self, rgb: np.ndarray) -> None:
        """Encode one frame, (height, width, 3) uint8 RGB."""
        if self._closed:
            raise ValueError(f"{self.path}: write() after close()")
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) uint8 frame, got "
                             f"{rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames_written
        self.frames_written += 1
        for packet in self._stream.encode(frame):
            self._mux_video(packet)

    def _mux_video(self, packet: av.Packet) -> None:
        if self._audio is not None and packet.pts is not None:
            self._audio.copy_until(float(packet.pts * packet.time_base))
        self._output.mux(packet)

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames_written == 0:
                raise ValueError(f"{self.path}: no frames were written")
            for packet in self._stream.encode(None):
                self._mux_video(packet)
            if self._audio is not None:
                self._audio.copy_until(None)
        except BaseException as error:
            self._stack.__exit__(type(error), error, error.__traceback__)
            raise
        self._stack.close()  # closes the containers, then renames the temporary file

    def abort(self, error: BaseException | None = None) -> None:
        """Stop writing and delete the temporary file; nothing appears at `path`."""
        if self._closed:
            return
        self._closed = True
        failure = error if error is not None else RuntimeError("writing aborted")
        with contextlib.suppress(type(failure)):
            self._stack.__exit__(type(failure), failure, failure.__traceback__)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)
