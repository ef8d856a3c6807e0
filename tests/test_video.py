"""Video I/O: pure helpers, probe/read/write on the fixtures and on tiny videos made here."""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import frame_number, numbered_frame

from motionxfer.errors import BadInput, BadVideo
from motionxfer.io.video import (
    Frame,
    VideoWriter,
    count_frames,
    displayed_size,
    encoder_rate,
    is_variable_frame_rate,
    probe,
    read_frames,
    resample_to_rate,
    rotate_to_display,
    rotation_from_display_matrix,
    rotation_from_tag,
)

ONE = 65536  # 1.0 in 16.16 fixed point
W = 1 << 30  # 1.0 in 2.30 fixed point


# ---------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("matrix", "clockwise"),
    [
        ([ONE, 0, 0, 0, ONE, 0, 0, 0, W], 0),
        ([0, ONE, 0, -ONE, 0, 0, 0, 0, W], 90),  # what a phone held upright writes
        ([-ONE, 0, 0, 0, -ONE, 0, 0, 0, W], 180),
        ([0, -ONE, 0, ONE, 0, 0, 0, 0, W], 270),
        ([0, 2 * ONE, 0, -2 * ONE, 0, 0, 0, 0, W], 90),  # scaled
    ],
)
def test_rotation_from_display_matrix(matrix: list[int], clockwise: int) -> None:
    assert rotation_from_display_matrix(matrix) == clockwise


@pytest.mark.parametrize(
    "matrix",
    [
        [-ONE, 0, 0, 0, ONE, 0, 0, 0, W],  # mirrored
        [46341, 46341, 0, -46341, 46341, 0, 0, 0, W],  # 45 degrees
        [0, 0, 0, 0, 0, 0, 0, 0, W],  # degenerate
        [ONE, 0, 0, 0, ONE, 0],  # too short
    ],
)
def test_rotation_from_display_matrix_rejects(matrix: list[int]) -> None:
    with pytest.raises(ValueError):
        rotation_from_display_matrix(matrix)


def test_rotation_from_tag() -> None:
    assert rotation_from_tag("90") == 90
    assert rotation_from_tag("-90") == 270
    assert rotation_from_tag("180.0") == 180
    assert rotation_from_tag("360") == 0
    with pytest.raises(ValueError):
        rotation_from_tag("45")


def test_rotate_to_display_turns_clockwise() -> None:
    stored = np.arange(6).reshape(2, 3)  # [[0 1 2] [3 4 5]]
    assert rotate_to_display(stored, 0) is stored
    # Clockwise: the left column, read bottom-up, becomes the top row.
    assert rotate_to_display(stored, 90).tolist() == [[3, 0], [4, 1], [5, 2]]
    assert rotate_to_display(stored, 180).tolist() == [[5, 4, 3], [2, 1, 0]]
    assert rotate_to_display(stored, 270).tolist() == [[2, 5], [1, 4], [0, 3]]
    with pytest.raises(ValueError):
        rotate_to_display(stored, 45)
    assert displayed_size(640, 480, 90) == (480, 640)
    assert displayed_size(640, 480, 180) == (640, 480)


def test_is_variable_frame_rate() -> None:
    assert not is_variable_frame_rate([0, 512, 1024, 1536, 2048])
    assert not is_variable_frame_rate([0, 33, 67, 100, 133, 167, 200])  # 30 fps in 1/1000 s
    assert is_variable_frame_rate([0, 33, 67, 133, 167, 267])  # dropped frames
    assert not is_variable_frame_rate([0, 10])  # too few to tell
    # B-frames: decode order differs from display order; the first 40 packets of a longer stream
    # leave gaps among the last presentation times that later packets fill.
    decode_order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11] + list(range(13, 37)) + [40, 38, 39]
    ticks = [512 * value for value in decode_order]
    assert not is_variable_frame_rate(ticks, complete=False)
    assert is_variable_frame_rate(ticks, complete=True)  # seen as complete, 37..39 jump looks odd


def _resampled(
    times: list[float], fps: float, start: float = 0.0, end: float | None = None
) -> list[tuple[int, float, int]]:
    return [(index, round(time, 6), item) for index, time, item in
            resample_to_rate(((time, position) for position, time in enumerate(times)),
                             fps, start, end)]


def test_resample_same_rate_is_identity() -> None:
    times = [index / 30 for index in range(10)]
    assert [item for _, _, item in _resampled(times, 30)] == list(range(10))


def test_resample_down_and_up() -> None:
    times = [index / 30 for index in range(12)]  # 0.4 s
    down = _resampled(times, 15)
    assert [item for _, _, item in down] == [0, 2, 4, 6, 8, 10]
    assert [time for _, time, _ in down] == [round(k / 15, 6) for k in range(6)]
    up = _resampled(times, 60)
    assert len(up) == 24  # 0.4 s at 60 fps: the last frame is shown until 0.4 s
    assert [item for _, _, item in up][:6] == [0, 0, 1, 1, 2, 2]


def test_resample_variable_rate_picks_nearest() -> None:
    times = [0.0, 0.033, 0.067, 0.133, 0.167, 0.267, 0.3]
    plan = [item for _, _, item in _resampled(times, 30)]
    # t = 0.1 is midway between 0.067 and 0.133: the earlier wins; 0.2 is nearer 0.167 than 0.267.
    assert plan == [0, 1, 2, 2, 3, 4, 4, 5, 5, 6]


def test_resample_range() -> None:
    times = [index / 30 for index in range(30)]
    plan = _resampled(times, 10, start=0.5, end=0.8)
    assert [(index, time, item) for index, time, item in plan] == [(0, 0.5, 15), (1, 0.6, 18),
                                                                    (2, 0.7, 21)]
    assert _resampled([], 30) == []
    with pytest.raises(ValueError):
        _resampled([0.0, 0.1, 0.1], 30)
    with pytest.raises(ValueError):
        _resampled([0.0], 0)


def test_encoder_rate() -> None:
    assert encoder_rate(30.0) == 30
    assert encoder_rate(30000 / 1001) == Fraction(30000, 1001)
    assert encoder_rate(Fraction(24000, 1001)) == Fraction(24000, 1001)
    assert encoder_rate(12.5) == Fraction(25, 2)
    with pytest.raises(ValueError):
        encoder_rate(0.0)


# ---------------------------------------------------------------------------- fixtures


def test_probe_fixture(fixtures_dir: Path) -> None:
    path = fixtures_dir / "target_clip.mp4"
    info = probe(path)
    assert info.path == path
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.fps == 30.0
    assert (info.frame_count, info.frame_count_exact) == (120, True)
    assert (info.width, info.height, info.rotation) == (256, 256, 0)
    assert info.duration == pytest.approx(4.0, abs=0.04)
    assert not info.variable_frame_rate
    assert info.has_audio
    assert info.codec == "h264"
    assert type(info).from_dict(info.to_dict()) == info
    assert count_frames(path) == 120
    keypoints = np.load(fixtures_dir / "target_clip_keypoints.npz")
    assert keypoints["kp2d"].shape == (120, 30, 2)


def test_read_frames_fixture(fixtures_dir: Path) -> None:
    frames = list(read_frames(fixtures_dir / "gt_target0_source0_clip.mp4"))
    assert len(frames) == 120
    assert [frame.index for frame in frames] == list(range(120))
    assert [frame.time for frame in frames] == pytest.approx([k / 30 for k in range(120)])
    assert all(frame.rgb.shape == (256, 256, 3) and frame.rgb.dtype == np.uint8 for frame in frames)
    assert isinstance(frames[0], Frame)
    assert frames[0].rgb.std() > 10  # a picture, not a blank frame


def test_trimming_seeks_to_the_same_frames(fixtures_dir: Path) -> None:
    path = fixtures_dir / "source_clip.mp4"
    everything = list(read_frames(path))
    trimmed = list(read_frames(path, start=2.0, end=3.0))
    assert len(trimmed) == 30
    assert [frame.index for frame in trimmed] == list(range(30))
    assert trimmed[0].time == pytest.approx(2.0)
    assert trimmed[-1].time == pytest.approx(2.0 + 29 / 30)
    for frame in trimmed:
        np.testing.assert_array_equal(frame.rgb, everything[60 + frame.index].rgb)
    tail = list(read_frames(path, start=3.5))
    assert len(tail) == 15 and tail[-1].time == pytest.approx(119 / 30)
    head = list(read_frames(path, end=0.5))
    assert len(head) == 15


@pytest.mark.parametrize("name", ["gops.mp4", "gops.mkv"])
def test_trimming_between_keyframes(make_video, name: str) -> None:
    path = make_video(name, frame_count=30, keyframe_interval=8)
    with av.open(str(path)) as container:
        keyframes = [packet.pts for packet in container.demux(video=0) if packet.is_keyframe]
    assert len(keyframes) >= 3  # the seek has keyframes to choose from
    for start, end in [(0.4, 0.6), (0.5, None), (0.26, 0.3), (0.9, 1.0), (0.61, 0.71)]:
        frames = list(read_frames(path, start=start, end=end))
        first = math.ceil(start * 30 - 1e-6)  # the first frame at or after start
        last = 30 if end is None else math.ceil(end * 30 - 1e-6)
        assert [frame_number(frame.rgb) for frame in frames] == list(range(first, last))
        assert frames[0].time == pytest.approx(first / 30, abs=1e-3)
    with pytest.raises(BadInput, match="1.00 s long"):  # no frame in [0.27, 0.3)
        list(read_frames(path, start=0.27, end=0.3))


def test_read_frames_resampled(fixtures_dir: Path) -> None:
    path = fixtures_dir / "source_clip.mp4"
    half = list(read_frames(path, start=1.0, end=2.0, fps=15))
    assert len(half) == 15
    assert [frame.time for frame in half] == pytest.approx([1.0 + k / 15 for k in range(15)])
    full = list(read_frames(path, start=1.0, end=2.0))
    for frame in half:
        np.testing.assert_array_equal(frame.rgb, full[2 * frame.index].rgb)


def test_bad_ranges(fixtures_dir: Path) -> None:
    path = fixtures_dir / "target_clip.mp4"
    with pytest.raises(BadInput, match="no frames"):
        list(read_frames(path, start=10.0))
    with pytest.raises(BadInput):
        read_frames(path, start=2.0, end=1.0)
    with pytest.raises(BadInput):
        read_frames(path, start=-1.0)
    with pytest.raises(BadInput):
        read_frames(path, fps=0)


# ---------------------------------------------------------------------------- made here


def test_rotation_from_display_matrix_in_a_file(make_video) -> None:
    # A 64 x 32 picture with a white marker top-left, stored with "turn 90 degrees
    # counterclockwise to display": a player shows it 32 wide, 64 tall, marker bottom-left.
    path = make_video("rotated.mp4", frame_count=3, width=64, height=32,
                      display_rotation_counterclockwise=90)
    info = probe(path)
    assert info.rotation == 270
    assert (info.width, info.height) == (32, 64)
    frame = next(read_frames(path))
    assert frame.rgb.shape == (64, 32, 3)
    corners = {"top_left": frame.rgb[:4, :4], "bottom_left": frame.rgb[-4:, :4],
               "top_right": frame.rgb[:4, -4:], "bottom_right": frame.rgb[-4:, -4:]}
    assert [name for name, patch in corners.items() if patch.mean() > 200] == ["bottom_left"]
    with av.open(str(path)) as container:  # agrees with FFmpeg's own reading of the matrix
        assert next(container.decode(video=0)).rotation == 90


def test_rotation_from_legacy_tag(make_video) -> None:
    path = make_video("tagged.mkv", frame_count=3, width=64, height=32, rotate_tag="90")
    info = probe(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (32, 64)
    assert not info.frame_count_exact  # Matroska does not store a frame count
    assert info.frame_count == 3
    rgb = next(read_frames(path)).rgb
    assert rgb.shape == (64, 32, 3)
    assert rgb[:4, -4:].mean() > 200  # clockwise: the top-left marker is now top-right
    assert rgb[:4, :4].mean() < 100


def test_variable_frame_rate(make_video) -> None:
    times = [0.0, 0.033, 0.067, 0.133, 0.167, 0.267, 0.3, 0.333]
    path = make_video("vfr.mp4", frame_count=8, timestamps=times)
    info = probe(path)
    assert info.variable_frame_rate
    assert info.frame_count == 8
    as_stored = list(read_frames(path))
    assert [frame.time for frame in as_stored] == pytest.approx(times, abs=1e-6)
    assert [frame_number(frame.rgb) for frame in as_stored] == list(range(8))
    constant = list(read_frames(path, fps=30))
    assert [frame.time for frame in constant] == pytest.approx([k / 30 for k in range(11)])
    assert [frame_number(frame.rgb) for frame in constant] == [0, 1, 2, 2, 3, 4, 4, 5, 5, 6, 7]
    constant[2].rgb[:] = 0  # a duplicated frame is a copy of its own
    assert frame_number(constant[3].rgb) == 2
    assert not probe(make_video("cfr.mp4", frame_count=8)).variable_frame_rate


def test_writer_roundtrip_with_audio(tmp_path: Path, fixtures_dir: Path) -> None:
    audio_source = fixtures_dir / "source_clip.mp4"
    output = tmp_path / "out.mp4"
    with VideoWriter(output, fps=30, width=64, height=48, audio_from=audio_source,
                     audio_start=1.0, audio_end=2.0) as writer:
        for index in range(30):
            writer.write(numbered_frame(index, 64, 48))
        assert writer.audio_copied
        assert not output.exists()  # only the temporary file until the end
    assert writer.frames_written == 30
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.mp4"]

    info = probe(output)
    assert (info.frame_count, info.fps, info.width, info.height) == (30, 30.0, 64, 48)
    assert info.has_audio and info.codec == "h264"
    frames = list(read_frames(output))
    assert [frame_number(frame.rgb) for frame in frames] == list(range(30))
    assert np.abs(frames[7].rgb.astype(int) - numbered_frame(7, 64, 48)).mean() < 3

    with av.open(str(audio_source)) as container:
        stream = container.streams.audio[0]
        start, end = round(1.0 / stream.time_base), round(2.0 / stream.time_base)
        wanted = [bytes(packet) for packet in container.demux(stream)
                  if packet.size and packet.pts + packet.duration >= start and packet.pts < end]
    with av.open(str(output)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        packets = [packet for packet in container.demux(stream) if packet.size]
        copied = [bytes(packet) for packet in packets]
        first_time = float(packets[0].pts * stream.time_base)
    assert copied == wanted  # the same bytes: copied, not re-encoded
    assert -0.05 < first_time <= 0.0  # shifted to start at 0 (one packet of pre-roll)


def test_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    with (
        pytest.raises(RuntimeError, match="boom"),
        VideoWriter(output, fps=30, width=64, height=64) as writer,
    ):
        writer.write(numbered_frame(0))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no frames"), VideoWriter(output, 30, 64, 64):
        pass
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="even"):
        VideoWriter(tmp_path / "odd.mp4", fps=30, width=63, height=64)
    with pytest.raises(BadInput):
        VideoWriter(tmp_path / "x.mp4", fps=0, width=64, height=64)
    with pytest.raises(BadVideo):
        VideoWriter(tmp_path / "x.mp4", fps=30, width=64, height=64,
                    audio_from=tmp_path / "missing.mp4")
    with VideoWriter(tmp_path / "x.mp4", fps=30, width=64, height=64) as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((64, 64, 3), np.float32))
        with pytest.raises(ValueError):
            writer.write(np.zeros((32, 64, 3), np.uint8))
        writer.write(numbered_frame(0))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["x.mp4"]


def test_writer_keeps_ntsc_rate_and_no_audio_without_a_track(tmp_path: Path, make_video) -> None:
    silent = make_video("silent.mp4")
    output = tmp_path / "ntsc.mp4"
    with VideoWriter(output, fps=30000 / 1001, width=64, height=64, audio_from=silent) as writer:
        for index in range(3):
            writer.write(numbered_frame(index))
    assert not writer.audio_copied
    with av.open(str(output)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
        assert not container.streams.audio


def test_paths_with_spaces_and_non_ascii(tmp_path: Path, fixtures_dir: Path) -> None:
    folder = tmp_path / "mein ördner"
    folder.mkdir()
    path = folder / "tänz video.mp4"
    shutil.copy(fixtures_dir / "target_clip.mp4", path)
    assert probe(path).frame_count == 120
    assert len(list(read_frames(path, start=1.0, end=1.5))) == 15
    output = folder / "ausgabe – 舞蹈.mp4"
    with VideoWriter(output, fps=30, width=64, height=64, audio_from=path, audio_end=0.5) as writer:
        for index in range(15):
            writer.write(numbered_frame(index))
    assert probe(output).has_audio
    assert count_frames(output) == 15


# ---------------------------------------------------------------------------- bad input


def _assert_bad(path: Path, words: str) -> None:
    for use in (probe, lambda video: list(read_frames(video)), count_frames):
        with pytest.raises(BadVideo, match=words) as caught:
            use(path)
        assert str(path) in caught.value.message
        assert caught.value.hint


def test_missing_file_and_folder(tmp_path: Path) -> None:
    _assert_bad(tmp_path / "nothing here.mp4", "does not exist")
    _assert_bad(tmp_path, "folder")


def test_empty_and_non_video_files(tmp_path: Path, make_video) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    _assert_bad(empty, "empty")

    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    _assert_bad(text, "not a video")

    png = tmp_path / "picture.mp4"
    with av.open(str(tmp_path / "picture.png"), "w") as container:  # a real PNG, renamed
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        frame = av.VideoFrame.from_ndarray(numbered_frame(0, 16, 16), format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            container.mux(packet)
    (tmp_path / "picture.png").rename(png)
    assert png.read_bytes()[:4] == b"\x89PNG"
    _assert_bad(png, "still image")

    audio_only = tmp_path / "song.mp4"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=48000, layout="mono")
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                             layout="mono")
        samples.sample_rate, samples.pts = 48000, 0
        for packet in list(stream.encode(samples)) + list(stream.encode(None)):
            container.mux(packet)
    _assert_bad(audio_only, "no video stream")


def test_video_without_decodable_frames(tmp_path: Path) -> None:
    path = tmp_path / "zeroed.mp4"
    with VideoWriter(path, fps=30, width=64, height=64) as writer:  # moov first (faststart)
        for index in range(5):
            writer.write(numbered_frame(index))
    data = bytearray(path.read_bytes())
    at = data.find(b"mdat")
    size = int.from_bytes(data[at - 4:at], "big")
    data[at + 4:at - 4 + size] = bytes(size - 8)  # every frame's bytes zeroed
    path.write_bytes(bytes(data))
    for use in (probe, lambda video: list(read_frames(video))):
        with pytest.raises(BadVideo, match="no decodable"):
            use(path)


def test_truncated_files(
    tmp_path: Path, fixtures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = fixtures_dir / "target_clip.mp4"
    everything = [frame.rgb for frame in read_frames(whole)]
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # our writer puts the index first

    # Index first, data cut in half: the frames that are there decode, then reading stops.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadVideo, match="truncated") as caught:
        probe(cut)
    assert "read_frames" in caught.value.hint
    with caplog.at_level(logging.WARNING, logger="motionxfer.io.video"):
        frames = list(read_frames(cut))
    assert "truncated" in caplog.text
    assert 20 < len(frames) < 120
    positions = [round(frame.time * 30) for frame in frames]
    assert positions == sorted(set(positions))
    for frame, position in zip(frames, positions):
        assert frame.time == pytest.approx(position / 30)
        np.testing.assert_array_equal(frame.rgb, everything[position])  # exactly the good frames
    assert len(frames) <= count_frames(cut) < 120

    # Cut before the end of the index: nothing can be read.
    cut_early = tmp_path / "cut early.mp4"
    cut_early.write_bytes(data[:200])
    _assert_bad(cut_early, "not a video|no video stream")

    # Index at the end (as most cameras write it) and the end missing: nothing can be read.
    index_last = tmp_path / "index last.mp4"
    with av.open(str(whole)) as source, av.open(str(index_last), "w") as target:
        template = source.streams.video[0]
        stream = target.add_stream_from_template(template)
        for packet in source.demux(template):
            if packet.size:
                packet.stream = stream
                target.mux(packet)
    data = index_last.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")
    index_last.write_bytes(data[: len(data) // 2])
    _assert_bad(index_last, "not a video")
