"""REMOT's Global Alignment Module as pure functions of layouts (parsing maps or person masks).

REMOT (Zhao et al., ACM MM 2022) puts the source's figure where the target stands before it
generates anything: from each frame's layout it measures the person's height (top-most to
bottom-most foreground row) and position, scales the source's layout by the ratio of the
target's height to the source's and translates it onto the target's position.

Choices, and the alternatives:
- Scale. REMOT: target height / source height. Per frame is jittery (arms raised, crouching),
  so here it is one scale per clip from robust statistics: the `height_percentile` (default
  90th) of each person's heights over the frames, which picks the standing height and ignores
  crouches. Alternatives: the median (crouch-heavy clips shrink it), a per-frame ratio
  (follows every squat), or joint-based lengths (ankle-to-nose; needs poses, see the project's
  pose normalization).
- Offset. REMOT anchors the feet: the source's bottom row (the feet), scaled, goes to the
  target's reference bottom row, and the source's horizontal centre to the target's. The
  reference is the target's median (over its frames) bottom row and centre column, and the
  source's *motion* relative to its own median position is kept, scaled: a source who walks
  left walks left on the target's floor (`anchor="feet"`). `anchor="centre"` aligns the
  centres of the bounding boxes instead (for people filmed from a moving or tilted camera,
  where "the floor" is not a row). A per-frame alternative (snap every frame's feet to the
  target) loses jumps; it is not offered.

Mapping: target_xy = scale * source_xy + (dx, dy), pixel coordinates (x right, y down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motionxfer.errors import BadInput


@dataclass(frozen=True)
class LayoutExtent:
    """Per-frame extent of the person: top, bottom (rows: of a layout, the pixel-centre
    coordinates of the top-most and bottom-most foreground pixels; of keypoints, the highest
    and lowest joints), centre_x, centre_y (bounding-box centre), height (pixels: a layout's
    bottom - top + 1, the rows it covers; keypoints' bottom - top); each (T,) float64, nan
    where the frame has no person."""

    top: np.ndarray
    bottom: np.ndarray
    centre_x: np.ndarray
    centre_y: np.ndarray
    height: np.ndarray

    def scaled(self, factor: float) -> LayoutExtent:
        """The extent in pixels `factor` times larger (a layout stored smaller than its video,
        measured in the video's pixels)."""
        if factor == 1.0:
            return self
        return LayoutExtent(*(values * factor for values in
                              (self.top, self.bottom, self.centre_x, self.centre_y, self.height)))


@dataclass(frozen=True)
class GlobalAlignment:
    """scale (T,) and offset (T, 2) as (dx, dy): target_xy = scale * source_xy + offset."""

    scale: np.ndarray
    offset: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map source points (T, N, 2) (x, y) to target coordinates (T, N, 2)."""
        return points * self.scale[:, None, None] + self.offset[:, None, :]


def layout_extent(layouts: np.ndarray) -> LayoutExtent:
    """Extent of the foreground (any non-zero label) in layouts (T, H, W)."""
    layouts = np.asarray(layouts)
    if layouts.ndim != 3:
        raise BadInput(f"layouts must be (T, H, W), got {layouts.shape}",
                       hint="stack per-frame parsing maps or masks")
    foreground = layouts > 0
    rows_any = foreground.any(axis=2)  # (T, H)
    cols_any = foreground.any(axis=1)  # (T, W)
    has = rows_any.any(axis=1)

    def first(flags: np.ndarray) -> np.ndarray:
        return np.where(has, flags.argmax(axis=1), np.nan)

    def last(flags: np.ndarray) -> np.ndarray:
        return np.where(has, flags.shape[1] - 1 - flags[:, ::-1].argmax(axis=1), np.nan)

    top, bottom = first(rows_any) + 0.5, last(rows_any) + 0.5
    left, right = first(cols_any) + 0.5, last(cols_any) + 0.5
    return LayoutExtent(top=top, bottom=bottom, centre_x=(left + right) / 2,
                        centre_y=(top + bottom) / 2, height=bottom - top + 1.0)


def keypoint_extent(keypoints: np.ndarray, seen: np.ndarray) -> LayoutExtent:
    """The person's extent from joints instead of a layout: top and bottom are the highest and
    lowest seen joints' rows, the centre that of their bounding box.

    keypoints: (T, J, 2) pixels (x, y); seen: (T, J) bool. Frames with fewer than two joints
    seen are nan. Joints stop short of the outline (the crown above the highest face point,
    the soles below the ankles or heels), so heights read smaller than a layout's: compare
    extents of one kind only."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    seen = np.asarray(seen, dtype=bool) & np.isfinite(keypoints).all(axis=-1)
    enough = seen.sum(axis=1) >= 2  # (T,)
    x = np.where(seen, keypoints[..., 0], np.nan)
    y = np.where(seen, keypoints[..., 1], np.nan)
    nan = np.full(len(keypoints), np.nan)
    top, bottom, left, right = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    top[enough], bottom[enough] = np.nanmin(y[enough], axis=1), np.nanmax(y[enough], axis=1)
    left[enough], right[enough] = np.nanmin(x[enough], axis=1), np.nanmax(x[enough], axis=1)
    return LayoutExtent(top=top, bottom=bottom, centre_x=(left + right) / 2,
                        centre_y=(top + bottom) / 2, height=bottom - top)


def align_extents(
    source: LayoutExtent,
    target: LayoutExtent,
    height_percentile: float = 90.0,
    anchor: str = "feet",
) -> GlobalAlignment:
    """`global_alignment` from extents already measured (of layouts or of keypoints, the same
    kind for both): scale (Ts,) and offset (Ts, 2), Ts the source's frames."""
    if anchor not in ("feet", "centre"):
        raise BadInput(f"unknown anchor {anchor!r}", hint="use 'feet' or 'centre'")
    for name, extent in (("source", source), ("target", target)):
        if not np.isfinite(extent.height).any():
            raise BadInput(f"the {name} layouts hold no person in any frame",
                           hint="check the masks or parsing maps of that video")
    scale = (np.nanpercentile(target.height, height_percentile)
             / np.nanpercentile(source.height, height_percentile))
    source_x, target_x = np.nanmedian(source.centre_x), np.nanmedian(target.centre_x)
    if anchor == "feet":
        source_y, target_y = np.nanmedian(source.bottom), np.nanmedian(target.bottom)
    else:
        source_y, target_y = np.nanmedian(source.centre_y), np.nanmedian(target.centre_y)
    # The source's median anchor lands on the target's; motion around it is kept, scaled.
    count = len(source.height)
    offset = np.tile([target_x - scale * source_x, target_y - scale * source_y], (count, 1))
    return GlobalAlignment(scale=np.full(count, scale), offset=offset)


def global_alignment(
    source_layouts: np.ndarray,
    target_layouts: np.ndarray,
    height_percentile: float = 90.0,
    anchor: str = "feet",
) -> GlobalAlignment:
    """Per-frame scale and offset that put the source's figure where the target stands.

    source_layouts: (Ts, H, W) parsing maps or masks of the source video (one entry per frame
    to align); target_layouts: (Tt, H', W') of the target's video (only its statistics are
    used). Returns scale (Ts,) (one value per clip, repeated) and offset (Ts, 2). Raises
    BadInput when either has no frame with a person or for an unknown anchor.
    """
    if anchor not in ("feet", "centre"):
        raise BadInput(f"unknown anchor {anchor!r}", hint="use 'feet' or 'centre'")
    return align_extents(layout_extent(source_layouts), layout_extent(target_layouts),
                         height_percentile, anchor)
