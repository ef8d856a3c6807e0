"""Global pose normalization (Everybody Dance Now, section 3.4), done with care.

The source dancer and the target person differ in height and stand at different distances from
different cameras. Before the source's stick figures drive the target's generator, each source
frame is scaled and translated so that the figure has the size the *target* would have at the
place the target usually stands:

    new_xy = old_xy * scale[t] + offset[t]          # per frame t, one scale for x and y

Everything here is a pure function of arrays; docs/normalization.md gives the maths and the reason
for each choice. In short:

1. Per frame, the *ground point* is where the body touches the floor: the mean of the two ankles,
   or the lower ankle when one leg is lifted. Its image row (y grows downward) says how far from
   the camera the person stands: lower in the image (larger y) is closer.
2. Per video (`ankle_statistics`), over the frames where the person stands on both feet: the close
   position (a high quantile of the ground row), the far position (a low quantile), and the body
   height (ground row minus head row) measured at each of them.
3. Per source frame (`fit_normalization`), the fraction `f` of the way from the source's far to its
   close position picks the same fraction between the target's far and close positions; the scale
   is the target's height there over the source's height there. Frames whose ground point cannot be
   trusted (ankles missing, both feet in the air) take their ground row by interpolation over
   time, and the ground row is smoothed a little so the normalization does not jitter.

Layouts without ankles (an animal tracked with DeepLabCut, a custom marker set) cannot be placed
on a floor this way. They are normalized by their bounding box (`method = "bounding_box"`, chosen
automatically when the layout has no ankles): one scale, the target's typical box size over the
source's (a quantile of the per-frame box diagonals, which a rotating body does not change), and
one translation that puts the source's typical bottom-centre of the box on the target's.

`method = "layout"` is REMOT's Global Alignment Module (`parsing.global_alignment`): one scale,
the ratio of the two people's standing heights (a high quantile of each video's per-frame
person height, top-most to bottom-most pixel), and the source's median feet row onto the
target's. The heights come from the parsing maps (hair to soles) when the caller passes both
videos' layout extents (the pipeline does when both videos have a current parsing cache), and
from the extent of the seen joints otherwise (head top or eyes to heels or toes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from motionxfer.errors import BadInput, NoPersonFound
from motionxfer.parsing.global_alignment import LayoutExtent, align_extents, keypoint_extent
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import Skeleton

# Joints at the height of the eyes, averaged (the visible ones) to give the head row of a frame.
HEAD_JOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
HORIZONTAL_MODES = ("target_median", "source_position")
SCALE_MODELS = ("heights", "edn")
METHODS = ("auto", "ankles", "bounding_box", "layout")
ANKLE_JOINTS = ("left_ankle", "right_ankle")


@dataclass(frozen=True)
class NormalizeConfig:
    """Settings of global pose normalization. Lengths are fractions of the body height.

    min_visibility: a joint counts as seen when its visibility is at least this (and x, y are
        numbers).
    raised_leg_threshold: an ankle higher in the image than the other by more than this fraction
        of the body height belongs to a lifted leg: the frame is left out of the statistics and its
        ground point is the lower ankle (the foot on the floor). Feet planted on the floor one step
        apart in depth differ by about 0.06 at a usual camera distance, so 0.12 keeps those.
    airborne_threshold, airborne_window: a frame whose ground point is higher by more than
        `airborne_threshold` (of the body height) than both the lowest ground point in the
        `airborne_window` seconds before it and the lowest in the window after it is a jump: it
        is left out of the statistics, and its ground row is interpolated from the frames around
        it. Walking toward or away from the camera lowers the ground row on one side only, so
        it is kept.
    close_quantile, far_quantile: quantiles of the ground row over the standing frames that
        define the close (large y) and far (small y) positions. EDN takes the maximum and a cluster
        above the median; quantiles are robust to a single wrong detection and symmetric.
    position_window: the body height at the close (far) position is measured on the standing
        frames whose ground row lies within this fraction of the far-to-close range of it (widened
        to the `min_frames` nearest frames when fewer lie inside). A fraction of the range, not
        of pixels, so that a source covering half the target's range is measured on the same
        share of its frames.
    height_quantile: the quantile of those frames' heights taken as the height there; 0.5 is
        EDN's median. Bending and crouching only lower a frame's height, so a higher quantile
        leans toward the upright height.
    min_frames: the fewest standing frames a video needs (also the fewest frames a height is
        measured on).
    smoothing: the standard deviation, in seconds, of the Gaussian that smooths the source's
        ground row over time (0 turns smoothing off).
    min_depth_range: when the source's close and far positions are closer than this fraction of
        its body height, its depth cannot be read from the ankles: one scale (target height over
        source height at their median positions) is used, and the source's median position is
        placed on the target's.
    max_extrapolation: how far beyond its own [far, close] range (in units of that range) a
        source frame's depth fraction may go before it is clipped.
    scale_model: "heights" divides the target's height by the source's height, each interpolated
        linearly at the frame's depth (exact for a pinhole camera over a flat floor, where the
        image height of a body is linear in its ground row); "edn" interpolates the two scales
        linearly, as the paper writes it. Both agree at the close and far positions.
    horizontal: "target_median" puts the source's median ground point at the target's median
        column, and the source's sideways motion around it, scaled; "source_position" keeps the
        source's median column as the same fraction of the frame width.
    method: "ankles" (EDN's, above), "bounding_box" (one scale from the bounding boxes' sizes,
        for layouts without ankles: animals, custom markers; it uses min_visibility,
        height_quantile as the quantile of the box sizes, min_frames and horizontal), or "auto":
        ankles when the layout has both, else the bounding box; "layout": REMOT's global
        alignment (one scale from the standing heights, `layout_height_quantile`, feet row
        onto feet row; it uses min_visibility, min_frames and horizontal), from parsing maps
        when the pipeline has both videos' parsing, else from the joints' extent.
    layout_height_quantile: the quantile of the per-frame person heights taken as the standing
        height by the "layout" method (REMOT's 90th percentile ignores crouches).
    """

    min_visibility: float = 0.5
    raised_leg_threshold: float = 0.12
    airborne_threshold: float = 0.05
    airborne_window: float = 0.4
    close_quantile: float = 0.95
    far_quantile: float = 0.05
    position_window: float = 0.1
    height_quantile: float = 0.5
    min_frames: int = 15
    smoothing: float = 0.1
    min_depth_range: float = 0.03
    max_extrapolation: float = 0.5
    scale_model: str = "heights"
    horizontal: str = "source_position"
    method: str = "auto"
    layout_height_quantile: float = 0.9

    def __post_init__(self) -> None:
        def require(condition: bool, setting: str, what: str) -> None:
            if not condition:
                raise BadInput(
                    f"normalization setting {setting} = {getattr(self, setting)!r}: {what}",
                    hint="fix it in the [normalize] table of config.toml",
                )

        require(0.0 <= self.min_visibility <= 1.0, "min_visibility", "must be in [0, 1]")
        require(self.raised_leg_threshold > 0.0, "raised_leg_threshold", "must be positive")
        require(self.airborne_threshold > 0.0, "airborne_threshold", "must be positive")
        require(self.airborne_window >= 0.0, "airborne_window", "must not be negative")
        require(0.5 < self.close_quantile <= 1.0, "close_quantile", "must be in (0.5, 1]")
        require(0.0 <= self.far_quantile < 0.5, "far_quantile", "must be in [0, 0.5)")
        require(self.position_window > 0.0, "position_window", "must be positive")
        require(0.0 <= self.height_quantile <= 1.0, "height_quantile", "must be in [0, 1]")
        require(self.min_frames >= 1, "min_frames", "must be at least 1")
        require(self.smoothing >= 0.0, "smoothing", "must not be negative")
        require(self.min_depth_range >= 0.0, "min_depth_range", "must not be negative")
        require(self.max_extrapolation >= 0.0, "max_extrapolation", "must not be negative")
        require(self.scale_model in SCALE_MODELS, "scale_model",
                f"must be one of {', '.join(SCALE_MODELS)}")
        require(self.horizontal in HORIZONTAL_MODES, "horizontal",
                f"must be one of {', '.join(HORIZONTAL_MODES)}")
        require(self.method in METHODS, "method", f"must be one of {', '.join(METHODS)}")
        require(0.0 <= self.layout_height_quantile <= 1.0, "layout_height_quantile",
                "must be in [0, 1]")


@dataclass(frozen=True)
class AnkleStatistics:
    """Where a person stands in one video and how tall they look there; pixels of that video.

    Rows (y) grow downward: `close_ankle_y` > `far_ankle_y`. Heights are ground row minus head row
    (eye level, see HEAD_JOINTS), not the full stature. Store it with `to_dict` (JSON numbers).
    """

    close_ankle_y: float
    far_ankle_y: float
    close_height: float
    far_height: float
    median_ankle_y: float
    median_height: float
    median_ankle_x: float
    image_size: tuple[int, int]  # (width, height) of the video the rows refer to
    frames_used: int  # standing frames the statistics come from
    frames_total: int

    @property
    def depth_range(self) -> float:
        return self.close_ankle_y - self.far_ankle_y

    def to_dict(self) -> dict[str, float | int | list[int]]:
        values = asdict(self)
        values["image_size"] = list(self.image_size)
        return values

    @staticmethod
    def from_dict(values: dict[str, object]) -> AnkleStatistics:
        names = {f.name for f in fields(AnkleStatistics)}
        if set(values) != names:
            raise BadInput(
                f"ankle statistics with keys {sorted(values)}, expected {sorted(names)}",
                hint="recompute them from the target's poses",
            )
        width, height = values["image_size"]  # type: ignore[misc]
        return AnkleStatistics(
            **{k: float(v) for k, v in values.items()  # type: ignore[arg-type]
               if k not in ("image_size", "frames_used", "frames_total")},
            image_size=(int(width), int(height)),
            frames_used=int(values["frames_used"]),  # type: ignore[call-overload]
            frames_total=int(values["frames_total"]),  # type: ignore[call-overload]
        )


@dataclass(frozen=True)
class Normalization:
    """Per-frame similarity transform of source poses into the target's frame.

    new_xy = old_xy * scale[t, None] + offset[t]   (same scale on x and y)
    """

    scale: np.ndarray  # (T,) float64
    offset: np.ndarray  # (T, 2) float64, pixels of the target's frame
    depth_fraction: np.ndarray  # (T,) between the source's far (0) and close (1); NaN if single
    interpolated: np.ndarray  # (T,) bool, True where the ground point was interpolated in time
    single_scale: bool  # True when the source hardly moved in depth (see min_depth_range)
    method: str = "ankles"  # "ankles", "bounding_box" or "layout" (NormalizeConfig.method)

    @property
    def num_frames(self) -> int:
        return int(self.scale.shape[0])


# --- per-frame measurements -------------------------------------------------------------------


@dataclass(frozen=True)
class _FrameMeasures:
    ground_y: np.ndarray  # (T,) row of the ground point; NaN where both ankles are not seen
    ground_x: np.ndarray  # (T,) column of the ground point
    height: np.ndarray  # (T,) ground row minus head row; NaN where either is unknown
    raised_leg: np.ndarray  # (T,) bool
    airborne: np.ndarray  # (T,) bool
    body_height: float  # median height over the frames where it is known

    @property
    def standing(self) -> np.ndarray:  # (T,) bool: frames the statistics may use
        known = np.isfinite(self.ground_y) & np.isfinite(self.height) & (self.height > 0)
        return known & ~self.raised_leg & ~self.airborne

    @property
    def supported(self) -> np.ndarray:  # (T,) bool: frames whose ground row is trusted
        return np.isfinite(self.ground_y) & ~self.airborne


def _seen(keypoints: np.ndarray, min_visibility: float) -> np.ndarray:  # (T, J) bool
    finite = np.isfinite(keypoints[..., 0]) & np.isfinite(keypoints[..., 1])
    return finite & (keypoints[..., 2] >= min_visibility)


def _head_indices(skeleton: Skeleton) -> list[int]:
    present = [skeleton.index(name) for name in HEAD_JOINTS if skeleton.has(name)]
    if not present:
        skeleton.index("nose")  # raises BadInput naming the missing joint
    return present


def _measure(poses: PoseSequence, config: NormalizeConfig) -> _FrameMeasures:
    skeleton = poses.skeleton
    left, right = skeleton.index("left_ankle"), skeleton.index("right_ankle")
    head = _head_indices(skeleton)
    keypoints = poses.keypoints.astype(np.float64)  # (T, J, 3)
    seen = _seen(keypoints, config.min_visibility) & poses.person_present[:, None]  # (T, J)

    both = seen[:, left] & seen[:, right]  # (T,)
    left_xy = np.where(both[:, None], keypoints[:, left, :2], np.nan)  # (T, 2)
    right_xy = np.where(both[:, None], keypoints[:, right, :2], np.nan)
    mean_y = 0.5 * (left_xy[:, 1] + right_xy[:, 1])

    head_seen = seen[:, head]  # (T, H)
    head_count = head_seen.sum(axis=1)
    head_rows = np.where(head_seen, keypoints[:, head, 1], 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        head_y = np.where(head_count > 0, head_rows / np.maximum(head_count, 1), np.nan)
    height = mean_y - head_y  # (T,)

    valid_height = height[np.isfinite(height) & (height > 0)]
    if valid_height.size == 0:
        raise NoPersonFound(
            f"no frame of the {poses.num_frames} shows both ankles and the head",
            hint="film the whole body, feet and head included, or fill longer gaps in the "
            "keypoints: a larger max_gap in the [smoothing] table of config.toml",
        )
    body_height = float(np.median(valid_height))

    with np.errstate(invalid="ignore"):
        raised = np.abs(left_xy[:, 1] - right_xy[:, 1]) > config.raised_leg_threshold * body_height
    lower_is_left = left_xy[:, 1] >= right_xy[:, 1]
    lower_xy = np.where(lower_is_left[:, None], left_xy, right_xy)  # (T, 2)
    ground_xy = np.where(raised[:, None], lower_xy, 0.5 * (left_xy + right_xy))  # (T, 2)
    height = np.where(raised, ground_xy[:, 1] - head_y, height)

    window = int(round(config.airborne_window * poses.fps))
    airborne = _local_rises(ground_xy[:, 1], window) > config.airborne_threshold * body_height
    return _FrameMeasures(
        ground_y=ground_xy[:, 1],
        ground_x=ground_xy[:, 0],
        height=height,
        raised_leg=raised,
        airborne=airborne,
        body_height=body_height,
    )


def _local_rises(rows: np.ndarray, window: int) -> np.ndarray:
    """(T,) how far each row lies above (smaller y) the lowest point on *both* sides of it.

    min(max of the `window` rows before, max of the `window` rows after) - row; 0 where a side
    has no known row or the row is not a local rise. NaN rows give 0.
    """
    count = rows.shape[0]
    if window < 1 or count < 3:
        return np.zeros(count)
    filled = np.where(np.isfinite(rows), rows, -np.inf)
    padded = np.concatenate([np.full(window, -np.inf), filled, np.full(window, -np.inf)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)  # (T + window + 1, window)
    before = windows[:count].max(axis=1)  # rows t - window .. t - 1
    after = windows[window + 1: window + 1 + count].max(axis=1)  # rows t + 1 .. t + window
    envelope = np.minimum(before, after)
    with np.errstate(invalid="ignore"):
        rise = envelope - filled
    return np.where(np.isfinite(rise) & (rise > 0), rise, 0.0)


# --- statistics -------------------------------------------------------------------------------


def _height_near(rows: np.ndarray, heights: np.ndarray, position: float, window: float,
                 config: NormalizeConfig) -> float:
    distance = np.abs(rows - position)
    inside = distance <= window
    if inside.sum() < config.min_frames:
        inside = np.zeros_like(inside)
        inside[np.argsort(distance, kind="stable")[: config.min_frames]] = True
    return float(np.quantile(heights[inside], config.height_quantile))


def ankle_statistics(poses: PoseSequence, config: NormalizeConfig = NormalizeConfig()
                     ) -> AnkleStatistics:
    """Close and far positions of a person in one video and their height at each.

    Uses the frames where both ankles and the head are seen, no leg is lifted and the feet are
    on the floor. Raises NoPersonFound when fewer than `config.min_frames` such frames exist,
    BadInput when the layout has no ankles or head joints.
    """
    measures = _measure(poses, config)
    standing = measures.standing
    used = int(standing.sum())
    if used < config.min_frames:
        raise NoPersonFound(
            f"only {used} of {poses.num_frames} frames show the person standing with both ankles "
            f"and the head seen; normalization needs at least {config.min_frames}",
            hint="film the whole body, feet included, for a few seconds of standing and walking, "
            "or fill longer gaps in the keypoints (a larger max_gap in the [smoothing] table of "
            "config.toml), or a lower min_visibility in the [normalize] table",
        )
    rows = measures.ground_y[standing]
    heights = measures.height[standing]
    close_y = float(np.quantile(rows, config.close_quantile))
    far_y = float(np.quantile(rows, config.far_quantile))
    window = config.position_window * (close_y - far_y)
    median_y = float(np.median(rows))
    return AnkleStatistics(
        close_ankle_y=close_y,
        far_ankle_y=far_y,
        close_height=_height_near(rows, heights, close_y, window, config),
        far_height=_height_near(rows, heights, far_y, window, config),
        median_ankle_y=median_y,
        median_height=_height_near(rows, heights, median_y, window, config),
        median_ankle_x=float(np.median(measures.ground_x[standing])),
        image_size=(int(poses.image_size[0]), int(poses.image_size[1])),
        frames_used=used,
        frames_total=poses.num_frames,
    )


# --- fitting and applying ---------------------------------------------------------------------


def _interpolate_gaps(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Linear interpolation over frame indices, held constant before the first / after the last."""
    frames = np.arange(values.shape[0])
    return np.interp(frames, frames[known], values[known])


def _smooth(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing over time; the ends are extended with their edge values."""
    if sigma_frames <= 0.0 or values.shape[0] < 2:
        return values
    radius = max(1, int(math.ceil(3.0 * sigma_frames)))
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma_frames) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _check_statistics(statistics: AnkleStatistics, role: str) -> None:
    for name in ("close_height", "far_height", "median_height"):
        if not getattr(statistics, name) > 0.0:
            raise BadInput(
                f"the {role}'s ankle statistics have {name} = {getattr(statistics, name)}",
                hint=f"recompute the {role}'s statistics from a video that shows the person "
                "standing upright",
            )


def fit_normalization(
    source_poses: PoseSequence,
    source_statistics: AnkleStatistics,
    target_statistics: AnkleStatistics,
    config: NormalizeConfig = NormalizeConfig(),
) -> Normalization:
    """Per-frame scale and offset that carry the source's poses into the target's frame.

    f = (ground_y - source.far) / (source.close - source.far), clipped to
        [-max_extrapolation, 1 + max_extrapolation]
    scale = target height at f / source height at f   ("heights"; "edn" lerps the two ratios)
    the ground row maps to target.far + f * (target.close - target.far);
    the ground column's offset from the source's median column is scaled (see `horizontal`).
    """
    _check_statistics(source_statistics, "source")
    _check_statistics(target_statistics, "target")
    measures = _measure(source_poses, config)
    supported = measures.supported
    if not supported.any():
        raise NoPersonFound(
            f"none of the {source_poses.num_frames} source frames shows both ankles",
            hint="film the whole body, feet included, or fill longer gaps in the "
            "keypoints: a larger max_gap in the [smoothing] table of config.toml",
        )
    ground_y = _interpolate_gaps(measures.ground_y, supported)
    ground_y = _smooth(ground_y, config.smoothing * source_poses.fps)

    source, target = source_statistics, target_statistics
    single_scale = source.depth_range < config.min_depth_range * source.median_height
    if single_scale:
        scale = np.full_like(ground_y, target.median_height / source.median_height)
        target_ground_y = target.median_ankle_y + (ground_y - source.median_ankle_y) * scale
        fraction = np.full_like(ground_y, np.nan)
    else:
        fraction = (ground_y - source.far_ankle_y) / source.depth_range
        fraction = np.clip(fraction, -config.max_extrapolation, 1.0 + config.max_extrapolation)
        if config.scale_model == "heights":
            target_height = target.far_height + fraction * (target.close_height - target.far_height)
            source_height = source.far_height + fraction * (source.close_height - source.far_height)
            if np.any(target_height <= 0) or np.any(source_height <= 0):
                raise BadInput(
                    "the heights extrapolated at the source's depth range are not positive",
                    hint="lower max_extrapolation, or use scale_model = \"edn\"",
                )
            scale = target_height / source_height
        else:
            scale_far = target.far_height / source.far_height
            scale_close = target.close_height / source.close_height
            scale = scale_far + fraction * (scale_close - scale_far)
        target_ground_y = target.far_ankle_y + fraction * target.depth_range
        if np.any(scale <= 0):
            raise BadInput(
                "the extrapolated scale is not positive for some source frames",
                hint="lower max_extrapolation, or use scale_model = \"heights\"",
            )

    if config.horizontal == "target_median":
        target_x = target.median_ankle_x
    else:
        target_x = source.median_ankle_x / source.image_size[0] * target.image_size[0]
    offset = np.stack(
        [target_x - source.median_ankle_x * scale, target_ground_y - ground_y * scale], axis=1
    )
    return Normalization(
        scale=scale,
        offset=offset,
        depth_fraction=fraction,
        interpolated=~supported,
        single_scale=bool(single_scale),
    )


def apply_normalization(poses: PoseSequence, normalization: Normalization,
                        target_image_size: tuple[int, int]) -> PoseSequence:
    """The poses moved into the target's frame: same skeleton and visibility, NaN stays NaN."""
    if normalization.num_frames != poses.num_frames:
        raise BadInput(
            f"a normalization of {normalization.num_frames} frames cannot move "
            f"{poses.num_frames} frames of poses",
            hint="fit the normalization on the same source poses it is applied to",
        )
    keypoints = poses.keypoints.copy()  # (T, J, 3)
    moved = (poses.keypoints[..., :2].astype(np.float64) * normalization.scale[:, None, None]
             + normalization.offset[:, None, :])
    keypoints[..., :2] = moved.astype(np.float32)
    return replace(poses, keypoints=keypoints,
                   image_size=(int(target_image_size[0]), int(target_image_size[1])))


# --- layouts without ankles: the bounding box ---------------------------------------------------


@dataclass(frozen=True)
class BoxStatistics:
    """How large a body's bounding box typically is in one video, and where its bottom-centre
    typically lies; pixels of that video. `size` is a quantile of the box diagonals."""

    size: float
    bottom_x: float  # median column of the box centres
    bottom_y: float  # median row of the box bottoms (y grows downward)
    image_size: tuple[int, int]  # (width, height)
    frames_used: int  # frames with at least two joints seen
    frames_total: int


def bounding_boxes(poses: PoseSequence, min_visibility: float = 0.5) -> np.ndarray:
    """(T, 4) float64 x0, y0, x1, y1 of the joints seen in each frame; NaN where fewer than two
    joints are seen (a box of one point has no size)."""
    keypoints = poses.keypoints.astype(np.float64)  # (T, J, 3)
    seen = _seen(keypoints, min_visibility) & poses.person_present[:, None]  # (T, J)
    enough = seen.sum(axis=1) >= 2  # (T,)
    x = np.where(seen, keypoints[..., 0], np.nan)[enough]  # (N, J): rows with two points or more
    y = np.where(seen, keypoints[..., 1], np.nan)[enough]
    boxes = np.full((poses.num_frames, 4), np.nan)
    boxes[enough] = np.stack([np.nanmin(x, axis=1), np.nanmin(y, axis=1),
                              np.nanmax(x, axis=1), np.nanmax(y, axis=1)], axis=1)
    return boxes


def box_statistics(poses: PoseSequence, config: NormalizeConfig = NormalizeConfig()
                   ) -> BoxStatistics:
    """The typical box size and bottom-centre of one video (the frames with two joints seen).

    Raises NoPersonFound when fewer than `config.min_frames` frames have a box, or the boxes
    have no size.
    """
    boxes = bounding_boxes(poses, config.min_visibility)
    known = np.isfinite(boxes).all(axis=1)
    used = int(known.sum())
    if used < config.min_frames:
        raise NoPersonFound(
            f"only {used} of {poses.num_frames} frames show at least two joints; the "
            f"bounding-box normalization needs at least {config.min_frames}",
            hint="track the body in more frames, fill gaps in the keypoints (smoothing's "
            "max_gap), or lower min_visibility in the [normalize] table",
        )
    boxes = boxes[known]
    diagonals = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    size = float(np.quantile(diagonals, config.height_quantile))
    if not size > 0.0:
        raise NoPersonFound(
            f"the joints seen in {poses.num_frames} frames all lie on one point",
            hint="check the keypoints: their coordinates do not change between joints",
        )
    return BoxStatistics(
        size=size,
        bottom_x=float(np.median(0.5 * (boxes[:, 0] + boxes[:, 2]))),
        bottom_y=float(np.median(boxes[:, 3])),
        image_size=(int(poses.image_size[0]), int(poses.image_size[1])),
        frames_used=used,
        frames_total=poses.num_frames,
    )


def fit_box_normalization(source_poses: PoseSequence, source_statistics: BoxStatistics,
                          target_statistics: BoxStatistics,
                          config: NormalizeConfig = NormalizeConfig()) -> Normalization:
    """One scale and offset for every source frame, from the two videos' bounding boxes.

    scale = target.size / source.size; the source's typical bottom-centre lands on the target's
    (its column: see `config.horizontal`), and the source's motion around it is scaled.
    """
    source, target = source_statistics, target_statistics
    frames = source_poses.num_frames
    scale = target.size / source.size
    if config.horizontal == "target_median":
        target_x = target.bottom_x
    else:
        target_x = source.bottom_x / source.image_size[0] * target.image_size[0]
    offset = np.array([target_x - source.bottom_x * scale, target.bottom_y - source.bottom_y * scale])
    known = np.isfinite(bounding_boxes(source_poses, config.min_visibility)).all(axis=1)
    return Normalization(
        scale=np.full(frames, scale),
        offset=np.tile(offset, (frames, 1)),
        depth_fraction=np.full(frames, np.nan),
        interpolated=~known,
        single_scale=True,
        method="bounding_box",
    )


# --- REMOT's global alignment: layout heights and feet ------------------------------------------


def pose_extent(poses: PoseSequence, min_visibility: float = 0.5) -> LayoutExtent:
    """The person's extent in each frame from the seen joints (`keypoint_extent`); nan where
    the person is absent or fewer than two joints are seen."""
    seen = _seen(poses.keypoints.astype(np.float64), min_visibility) & poses.person_present[:, None]
    return keypoint_extent(poses.xy, seen)


def fit_layout_normalization(source_poses: PoseSequence, source_extent: LayoutExtent,
                             target_extent: LayoutExtent, target_image_size: tuple[int, int],
                             config: NormalizeConfig = NormalizeConfig()) -> Normalization:
    """REMOT's global alignment as a Normalization: one scale, target standing height over the
    source's (`config.layout_height_quantile` of each video's heights), the source's median
    feet row onto the target's; the column per `config.horizontal` ("target_median" is
    REMOT's: the median centres aligned).

    Extents of one kind for both videos (parsing maps, or `pose_extent`). Raises NoPersonFound
    when either has fewer than `config.min_frames` frames with an extent.
    """
    for role, extent in (("source", source_extent), ("target", target_extent)):
        used = int(np.isfinite(extent.height).sum())
        if used < config.min_frames:
            raise NoPersonFound(
                f"only {used} frames of the {role} show the person's extent; the layout "
                f"normalization needs at least {config.min_frames}",
                hint="track the body in more frames, or lower min_frames in the [normalize] "
                "table",
            )
    alignment = align_extents(source_extent, target_extent,
                              100.0 * config.layout_height_quantile, "feet")
    offset = alignment.offset.copy()
    if config.horizontal == "source_position":
        source_x = float(np.nanmedian(source_extent.centre_x))
        target_x = source_x / source_poses.image_size[0] * target_image_size[0]
        offset[:, 0] = target_x - alignment.scale * source_x
    if len(offset) != source_poses.num_frames:
        raise BadInput(f"the source's extent has {len(offset)} frames, its poses "
                       f"{source_poses.num_frames}",
                       hint="measure the extent on the same frames as the poses")
    return Normalization(
        scale=alignment.scale, offset=offset,
        depth_fraction=np.full(len(offset), np.nan),
        interpolated=~np.isfinite(source_extent.height),
        single_scale=True, method="layout",
    )


def normalization_method(skeleton: Skeleton, config: NormalizeConfig = NormalizeConfig()) -> str:
    """`config.method`, with "auto" resolved: "ankles" when the layout has both ankles, else
    "bounding_box"."""
    if config.method != "auto":
        return config.method
    return "ankles" if all(skeleton.has(name) for name in ANKLE_JOINTS) else "bounding_box"


def normalize_poses(source: PoseSequence, target: PoseSequence,
                    config: NormalizeConfig = NormalizeConfig(),
                    source_layout: LayoutExtent | None = None,
                    target_layout: LayoutExtent | None = None,
                    ) -> tuple[PoseSequence, Normalization]:
    """Fit on both videos' poses and apply: the source's poses in the target's frame (by the
    ankles, by the bounding box, or by REMOT's layout alignment: `normalization_method`).

    source_layout, target_layout: the people's extents from their parsing maps
    (`parsing.global_alignment.layout_extent`), used by the "layout" method when both are
    given; without them it measures the extents of the joints."""
    if source.skeleton.joint_names != target.skeleton.joint_names:
        raise BadInput(
            f"the source poses use the layout '{source.skeleton.name}' and the target poses "
            f"'{target.skeleton.name}'",
            hint="extract both videos' poses with the same settings (--hands/--face alike)",
        )
    method = normalization_method(source.skeleton, config)
    if method == "layout":
        if source_layout is None or target_layout is None:
            source_layout = pose_extent(source, config.min_visibility)
            target_layout = pose_extent(target, config.min_visibility)
        normalization = fit_layout_normalization(source, source_layout, target_layout,
                                                 target.image_size, config)
    elif method == "bounding_box":
        normalization = fit_box_normalization(
            source, box_statistics(source, config), box_statistics(target, config), config)
    else:
        normalization = fit_normalization(
            source, ankle_statistics(source, config), ankle_statistics(target, config), config
        )
    return apply_normalization(source, normalization, target.image_size), normalization
