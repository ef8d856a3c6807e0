"""The target's own frames as texture: the nearest frame in pose, re-posed to the driving pose.

A `TextureBank` holds the target's frames at the working size (the frame cache), their poses and
the background plate. For a driving pose it picks the frame whose body pose is nearest
(`nearest_frames`: the mean pixel distance over the body joints both see, in the target's image
coordinates, since the driving poses are normalized onto the target) and re-poses its person part
by part (`texture.warp`). The result, four channels (RGB and alpha), joins the generator's pose
input: the model starts from the target's real colours and clothes instead of inventing them,
which is how REMOT's texture alignment lets it inherit a retrieval's sharpness.

The person in a bank frame is where the frame differs from the plate by more than 15 grey levels
inside the pose's cover (`background.cover`, grown by 8%; `background.plate.difference_mask`);
without a plate (a moving camera) the cover alone. Its body segments come from the built-in parser's geometry (`parsing.geometry`),
kept for the frames used most recently.

Training takes, for frame t, the nearest frame at least `gap` frames away from t (its neighbours
look like t itself, and at transfer time no frame of the new dance is in the bank). A driving
video's references are chosen for the whole video at once (`references`, `smooth_references`):
a texture that jumps between frames of similar pose flickers, so each change of reference costs
`SWITCH_COST` (a share of the person's height, in the distance's pixels), and the path of least
total distance plus changes is found by dynamic programming (Viterbi) over each frame's nearest
`CANDIDATES` and its neighbours' (`CANDIDATE_WINDOW`). Following the reference along the target's
own video for free instead of holding it measured worse (docs/quality.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from motionxfer.background.cover import pose_cover
from motionxfer.background.plate import difference_mask
from motionxfer.errors import BadInput
from motionxfer.parsing.geometry import JointLayout, body_field
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import Skeleton
from motionxfer.texture.warp import part_maps, repose

TEXTURE_CHANNELS = 4  # RGB and alpha
MIN_VISIBILITY = 0.5
PERSON_THRESHOLD = 15  # grey levels from the plate
COVER_MARGIN = 0.08
TEXTURE_GAP_SECONDS = 2.0  # training: a frame's texture comes from at least this far away
SWITCH_COST = 0.2  # transfer: each change of reference costs 20% of the person's height
CANDIDATES = 8  # nearest bank frames of each driving frame that the path may pass through
CANDIDATE_WINDOW = 8  # and those of the driving frames this many frames before and after it
TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
_CHUNK = 64  # query frames per distance block in `nearest_frames`


def has_torso(skeleton: Skeleton) -> bool:
    """Whether a joint layout has the shoulders and hips that the texture is re-posed from."""
    return all(skeleton.has(name) for name in TORSO)


def body_joints(poses: PoseSequence) -> slice:
    """The body joints of the layout (all joints when it has no body group)."""
    return poses.skeleton.group("body") if poses.skeleton.has_group("body") else slice(None)


def pose_distances(query_xy: np.ndarray, query_seen: np.ndarray, bank_xy: np.ndarray,
                   bank_seen: np.ndarray) -> np.ndarray:
    """The mean over the joints seen in both of the pixel distance, broadcast over leading axes:
    (..., J, 2) and (..., J) bool each -> (...), inf where no joint is seen in both."""
    both = query_seen & bank_seen
    distance = np.linalg.norm(np.nan_to_num(query_xy) - np.nan_to_num(bank_xy), axis=-1)
    counts = both.sum(axis=-1)
    return np.where(counts > 0, (distance * both).sum(axis=-1) / np.maximum(counts, 1), np.inf)


def nearest_frames(query_xy: np.ndarray, query_seen: np.ndarray, bank_xy: np.ndarray,
                   bank_seen: np.ndarray, query_frames: np.ndarray | None = None,
                   gap: int = 0) -> np.ndarray:
    """For each query pose, the bank frame of nearest pose: (S,) int64, -1 when none shares a
    joint with it.

    query_xy (S, J, 2), query_seen (S, J) bool; bank_xy (T, J, 2), bank_seen (T, J) bool (all
    False for a frame that may not be picked). The distance is `pose_distances`. `query_frames`
    (S,) with `gap`: query s is bank frame query_frames[s], and bank frames within `gap` of it
    are not picked.
    """
    nearest = np.full(len(query_xy), -1, np.int64)
    positions = np.arange(len(bank_xy))
    for first in range(0, len(query_xy), _CHUNK):
        chunk = slice(first, first + _CHUNK)
        mean = pose_distances(query_xy[chunk, None], query_seen[chunk, None], bank_xy[None],
                              bank_seen[None])  # (s, T)
        if query_frames is not None and gap > 0:
            mean[np.abs(positions[None] - query_frames[chunk, None]) < gap] = np.inf
        best = np.argmin(mean, axis=1)
        found = np.isfinite(mean[np.arange(len(best)), best])
        nearest[chunk] = np.where(found, best, -1)
    return nearest


def smooth_references(query_xy: np.ndarray, query_seen: np.ndarray, bank_xy: np.ndarray,
                      bank_seen: np.ndarray, switch_cost: float,
                      candidates: int = CANDIDATES, window: int = CANDIDATE_WINDOW) -> np.ndarray:
    """A bank frame for each query pose, (S,) int64, minimizing the sum over the queries of
    `pose_distances` plus `switch_cost` for every change of bank frame from one query to the next
    (Viterbi).

    Shapes as `nearest_frames`'. A query's choice is among its own `candidates` nearest bank
    frames and those of the queries up to `window` before and after it, so a reference can be
    held through a few frames where it is not among the nearest.
    With switch_cost = 0 the path is each query's nearest frame. A query that shares no joint
    with any bank frame (no pose) keeps the path's reference; a bank frame that may not be picked
    has no joint seen (`nearest_frames`), and is picked only if none may be.
    """
    count = len(query_xy)
    if count == 0:
        return np.zeros(0, np.int64)
    nearest_count = min(candidates, len(bank_xy))
    nearest = np.empty((count, nearest_count), np.int64)
    for first in range(0, count, _CHUNK):
        chunk = slice(first, first + _CHUNK)
        mean = pose_distances(query_xy[chunk, None], query_seen[chunk, None], bank_xy[None],
                              bank_seen[None])  # (s, T)
        nearest[chunk] = np.argpartition(mean, nearest_count - 1, axis=1)[:, :nearest_count]
    options: list[np.ndarray] = []  # each query's candidate bank frames
    costs: list[np.ndarray] = []  # the least total cost of a path ending there
    came_from: list[np.ndarray] = []  # the previous query's option on that path
    for index in range(count):
        frames = np.unique(nearest[max(0, index - window):index + window + 1])
        distance = pose_distances(query_xy[index], query_seen[index], bank_xy[frames],
                                  bank_seen[frames])
        if not np.isfinite(distance).any():  # no pose here: hold whatever came before
            frames = (options[-1] if index > 0
                      else np.flatnonzero(bank_seen.any(axis=-1))[:1] if bank_seen.any()
                      else np.zeros(1, np.int64))
            distance = np.zeros(len(frames))
        if index == 0:
            cost, back = distance, np.zeros(len(frames), np.int64)
        else:
            before, previous = options[-1], costs[-1]
            at = np.minimum(np.searchsorted(before, frames), len(before) - 1)
            held = np.where(before[at] == frames, previous[at], np.inf)  # the same frame before
            jump = int(np.argmin(previous))
            switch = previous[jump] + switch_cost
            stays = held <= switch
            cost = distance + np.where(stays, held, switch)
            back = np.where(stays, at, jump)
        options.append(frames)
        costs.append(cost)
        came_from.append(back)
    chosen = np.empty(count, np.int64)
    option = int(np.argmin(costs[-1]))
    for index in range(count - 1, -1, -1):
        chosen[index] = options[index][option]
        option = int(came_from[index][option])
    return chosen


class TextureBank:
    """The target's frames (T, H, W, 3) uint8 at the working size, their poses (T frames, in
    pixels of `poses.image_size`), the plate (H, W, 3) uint8 or None, and the frames that may be
    picked (`allowed` (T,) bool; always only frames showing the shoulders and hips)."""

    def __init__(self, frames: np.ndarray, poses: PoseSequence, plate: np.ndarray | None,
                 allowed: np.ndarray | None = None, cached_segments: int = 256) -> None:
        if len(frames) != poses.num_frames:
            raise BadInput(f"the texture bank has {len(frames)} frames but {poses.num_frames} "
                           "poses", hint="re-run extract-poses with --force, then train again")
        self.frames = frames
        self.poses = poses
        self.plate = plate
        self.size = (int(frames.shape[2]), int(frames.shape[1]))  # (width, height)
        if not has_torso(poses.skeleton):
            missing = [name for name in TORSO if not poses.skeleton.has(name)]
            raise BadInput(
                f"the texture re-poses a human body part by part, from the shoulders and hips, "
                f"and the '{poses.skeleton.name}' keypoint layout has no {', '.join(missing)}",
                hint="train without --texture (texture = false in [train] of config.toml)")
        self.layout = JointLayout.from_names(poses.skeleton.joint_names)
        seen = poses.keypoints[..., 2] >= MIN_VISIBILITY
        torso = [poses.skeleton.index(name) for name in TORSO]
        usable = poses.person_present & seen[:, torso].all(axis=1)
        self.allowed = usable if allowed is None else usable & allowed
        if not self.allowed.any():
            raise BadInput("no frame of the target shows the shoulders and hips, which the "
                           "texture needs", hint="train without --texture, or film the whole body")
        self.scale = np.array([self.size[0] / poses.image_size[0],
                               self.size[1] / poses.image_size[1]])
        self._seen = seen
        self._segments: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached = cached_segments
        self._lock = threading.Lock()  # the batch-making threads share the cache

    def _body(self, keypoints: np.ndarray, seen: np.ndarray,
              allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        body = body_joints(self.poses)
        seen = seen[..., body]
        if allowed is not None:
            seen = seen & allowed[:, None]
        return keypoints[..., body, :2], seen

    def _bank(self) -> tuple[np.ndarray, np.ndarray]:
        return self._body(self.poses.keypoints, self._seen, self.allowed)

    def nearest(self, keypoints: np.ndarray) -> int:
        """The allowed frame nearest in pose to keypoints (J, 3) in pixels of the bank's
        `poses.image_size` (a driving pose normalized onto the target)."""
        query = self._body(keypoints[None], keypoints[None, :, 2] >= MIN_VISIBILITY)
        found = int(nearest_frames(*query, *self._bank())[0])
        return found if found >= 0 else int(np.flatnonzero(self.allowed)[0])

    def references(self, poses: PoseSequence, switch_cost: float = SWITCH_COST) -> np.ndarray:
        """The reference frame of every frame of a driving video (normalized onto the target):
        (T,) int64, the path of `smooth_references` with a jump costing `switch_cost` times the
        person's median height in the bank (0: each frame's nearest)."""
        query_xy, query_seen = self._body(poses.keypoints,
                                          poses.keypoints[..., 2] >= MIN_VISIBILITY)
        bank_xy, bank_seen = self._bank()
        return smooth_references(query_xy, query_seen, bank_xy, bank_seen,
                                 switch_cost * self.person_height())

    def person_height(self) -> float:
        """The median over the allowed frames of the seen body joints' vertical extent, in
        pixels of `poses.image_size`."""
        bank_xy, bank_seen = self._bank()
        y = np.where(bank_seen, bank_xy[..., 1], np.nan)[self.allowed]
        return float(np.median(np.nanmax(y, axis=1) - np.nanmin(y, axis=1)))

    def training_references(self, gap: int) -> np.ndarray:
        """For every bank frame t, the allowed frame nearest in pose at least `gap` frames away
        (T,) int64 (-1 where there is none)."""
        query = self._body(self.poses.keypoints, self._seen)
        return nearest_frames(*query, *self._bank(), query_frames=np.arange(self.poses.num_frames),
                              gap=gap)

    def person(self, index: int) -> np.ndarray:
        """Frame `index`'s person mask (H, W) bool at the working size."""
        cover = pose_cover(self.poses.keypoints[index], self.poses.image_size, self.size,
                           COVER_MARGIN, MIN_VISIBILITY)
        if self.plate is None:
            return cover
        return difference_mask(np.asarray(self.frames[index]), self.plate, cover,
                               PERSON_THRESHOLD, cleanup=1)

    def segments(self, index: int) -> np.ndarray:
        """Frame `index`'s body segment per pixel (H, W) int8 (-1 off the person)."""
        with self._lock:
            cached = self._segments.get(index)
            if cached is not None:
                self._segments.move_to_end(index)
                return cached
        mask = self.person(index)
        width, height = self.size
        segments = np.full((height, width), -1, np.int8)
        if mask.any():
            field = body_field(mask, self.poses.keypoints[index, :, :2] * self.scale,
                               self.layout, present=self._seen[index])
            nearest, _ = field.nearest()
            segments = field.to_frame(nearest.astype(np.int8), -1)
        with self._lock:
            self._segments[index] = segments
            if len(self._segments) > self._cached:
                self._segments.popitem(last=False)
        return segments

    def encode(self, keypoints: np.ndarray, source_size: tuple[int, int],
               reference: int | None = None) -> np.ndarray:
        """Bank frame `reference` (default: the nearest in pose) re-posed to keypoints (J, 3) in
        pixels of `source_size`: (H, W, 4) uint8, RGB and alpha, at the working size."""
        if reference is None or reference < 0:
            reference = self.nearest(keypoints)
        target = keypoints[:, :2] * np.array([self.size[0] / source_size[0],
                                              self.size[1] / source_size[1]])
        maps = part_maps(self.poses.keypoints[reference, :, :2] * self.scale,
                         self._seen[reference], target, keypoints[:, 2] >= MIN_VISIBILITY,
                         self.layout)
        colour, alpha = repose(np.asarray(self.frames[reference]), self.segments(reference),
                               maps)
        return np.concatenate([colour, alpha[..., None]], axis=-1)
