"""Keypoints made by another pose estimator, read into a `PoseSequence`.

Layouts (docs/keypoints.md has examples):

- `openpose`: a folder of OpenPose `*_keypoints.json` files, one per frame, BODY_25 or COCO (18)
  body by the length of `pose_keypoints_2d`, with hands and face when OpenPose wrote them;
- `csv`: one row per frame, a `frame` column, then `<joint>_x`, `<joint>_y` and optionally
  `<joint>_visibility` (or `<joint>_likelihood`) for any joints;
- `deeplabcut`: DeepLabCut's CSV (header rows scorer / bodyparts / coords, and `individuals` for
  multi-animal projects, of which the first individual is read);
- `npz`: `keypoints` (T, J, 2 or 3) and `names` (J,), optionally `limbs` (L, 2), `fps`,
  `image_size`; or the test data's `kp2d` (T, J, 2), `visible` (T, J), `names`; or a pose file
  written by motionxfer itself.

Joint names are made canonical (`LAnkle`, `Left Ankle`, `leftAnkle` -> `left_ankle`, see
`canonical_joint_name`), so stages that look joints up by name find them. The stick figure of a
layout that is not a known one is drawn from the conventional limbs among its joints
(`skeleton.conventional_limbs`), or from limbs given as "a-b,b-c" (`limbs=` or a
`<name>.limbs.txt` file next to the keypoints).

Missing points (confidence 0, empty cells, NaN) become (NaN, NaN, 0); confidences are kept as the
visibility. Coordinates must be pixels of frames of `image_size`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from motionxfer.errors import BadInput
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import (
    HAND_NAMES,
    KNOWN_SKELETONS,
    OPENPOSE_COLORS,
    OPENPOSE_FACE_NAMES,
    Limb,
    Skeleton,
    conventional_limbs,
    openpose_skeleton,
)

KEYPOINT_LAYOUTS = ("auto", "openpose", "csv", "deeplabcut", "npz")
OPENPOSE_BODY_LENGTHS = {25: "body25", 18: "coco18"}
CSV_VISIBILITY_SUFFIXES = ("_visibility", "_likelihood")
DOCS_HINT = "see docs/keypoints.md for the layouts motionxfer reads"


def load_keypoints(
    path: str | os.PathLike[str],
    layout: str = "auto",
    fps: float | None = None,
    image_size: tuple[int, int] | None = None,
    limbs: str | None = None,
    expected_frames: int | None = None,
) -> PoseSequence:
    """Read keypoints in any of the layouts above (`layout="auto"` tells them apart).

    `fps` and `image_size` (width, height) are the video's; an NPZ file may carry its own, which
    must then agree. `expected_frames` is the video's frame count, checked when given. `limbs`
    ("a-b,b-c") draws the stick figure of an unknown layout.
    """
    path = Path(path)
    if not path.exists():
        raise BadInput(f"no keypoints at {path}", hint="check the path")
    if layout not in KEYPOINT_LAYOUTS:
        raise BadInput(f"unknown keypoint layout '{layout}'",
                       hint=f"use one of: {', '.join(KEYPOINT_LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(path)
    if layout == "openpose":
        poses = load_openpose(path, _need_fps(fps, path), _need_size(image_size, path))
    elif layout == "csv":
        poses = load_csv(path, _need_fps(fps, path), _need_size(image_size, path), limbs,
                         expected_frames)
    elif layout == "deeplabcut":
        poses = load_deeplabcut(path, _need_fps(fps, path), _need_size(image_size, path), limbs)
    else:
        poses = load_npz(path, fps, image_size, limbs)
    check_frame_count(poses, expected_frames, path)
    return poses


def detect_layout(path: Path) -> str:
    """"openpose" for a folder, "npz", "deeplabcut" or "csv" by a file's suffix and header."""
    if path.is_dir():
        return "openpose"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = next(csv.reader(handle), [])
        return "deeplabcut" if first[:1] == ["scorer"] else "csv"
    raise BadInput(
        f"cannot tell the keypoint layout of {path.name}",
        hint="pass an OpenPose JSON folder, a .csv or a .npz file, or name the layout with "
        f"--layout; {DOCS_HINT}",
    )


def check_frame_count(poses: PoseSequence, expected_frames: int | None, path: Path) -> None:
    if expected_frames is not None and poses.num_frames != expected_frames:
        raise BadInput(
            f"{path.name} has keypoints for {poses.num_frames} frames but the video has "
            f"{expected_frames}",
            hint="import the keypoints made from this very video (same trim, same frame rate)",
        )


# --- OpenPose -------------------------------------------------------------------------------

def load_openpose(folder: Path, fps: float, image_size: tuple[int, int]) -> PoseSequence:
    """An OpenPose `--write_json` folder: one `*_keypoints.json` per frame, in frame order.

    Of several people in a frame, the one with the largest box around their body points is kept.
    """
    files = _openpose_files(folder)
    people = [_openpose_person(file) for file in files]  # per frame: dict of arrays or None
    body_lengths = {len(p["pose"]) for p in people if p is not None and len(p["pose"])}
    if not body_lengths:
        raise BadInput(f"no person in any of the {len(files)} OpenPose files in {folder}",
                       hint="check that OpenPose ran on the right video")
    if len(body_lengths) > 1:
        raise BadInput(
            f"the OpenPose files in {folder} mix body layouts of {sorted(body_lengths)} points",
            hint="run OpenPose once, with one --model_pose, over the whole video",
        )
    body_points = body_lengths.pop()
    body = OPENPOSE_BODY_LENGTHS.get(body_points)
    if body is None:
        raise BadInput(
            f"OpenPose body layout with {body_points} points in {folder} is not supported",
            hint="run OpenPose with --model_pose BODY_25 (or COCO)",
        )
    hands = any(p is not None and _has_points(p["left_hand"], p["right_hand"]) for p in people)
    face = any(p is not None and _has_points(p["face"]) for p in people)
    layout = openpose_skeleton(body, hands, face)
    skeleton = KNOWN_SKELETONS.get(layout.name, layout)  # the shared instance (render caches by it)
    keypoints = np.full((len(files), skeleton.num_joints, 3), np.nan, np.float32)
    keypoints[..., 2] = 0.0
    present = np.zeros(len(files), bool)
    for frame, (file, person) in enumerate(zip(files, people)):
        if person is None:
            continue
        parts = [(person["pose"], body_points)]
        if hands:
            parts += [(person["left_hand"], len(HAND_NAMES)), (person["right_hand"], len(HAND_NAMES))]
        if face:
            parts += [(person["face"], len(OPENPOSE_FACE_NAMES))]
        start = 0
        for values, count in parts:
            if len(values) not in (0, count):
                raise BadInput(
                    f"{file.name}: a part of the person has {len(values)} points where the "
                    f"layout has {count}",
                    hint="the files must all come from one OpenPose run",
                )
            if len(values):
                keypoints[frame, start:start + count] = values
            start += count
        present[frame] = bool((person["pose"][:, 2] > 0).any())
    keypoints = _missing_to_nan(keypoints)
    _check_coordinates(keypoints, image_size, folder.name)
    return _sequence(keypoints, skeleton, fps, image_size, present)


def _openpose_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*_keypoints.json"))
    if not files:
        raise BadInput(f"no *_keypoints.json files in {folder}",
                       hint="point at the folder OpenPose wrote with --write_json")
    numbers = [re.search(r"(\d+)_keypoints\.json$", file.name) for file in files]
    if all(numbers):
        order = sorted(range(len(files)), key=lambda k: int(numbers[k].group(1)))  # type: ignore[union-attr]
        files = [files[k] for k in order]
        values = [int(numbers[k].group(1)) for k in order]  # type: ignore[union-attr]
        for before, after, file in zip(values, values[1:], files[1:]):
            if after != before + 1:
                raise BadInput(
                    f"OpenPose frame numbers in {folder} jump from {before} to {after} "
                    f"(at {file.name})",
                    hint="every frame of the video needs its JSON file",
                )
    return files


def _openpose_person(file: Path) -> dict[str, np.ndarray] | None:
    """The largest person of one OpenPose JSON file as (N, 3) arrays per part, or None."""
    try:
        with open(file, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise BadInput(f"{file.name} is not valid JSON: {error}",
                       hint="re-run OpenPose, or remove the broken file") from error
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise BadInput(f"{file.name} has no 'people' list", hint="is it an OpenPose file?")
    best, best_area = None, -1.0
    for number, person in enumerate(data["people"]):
        parts = {
            part: _triples(person.get(key, []), file, f"people[{number}].{key}")
            for part, key in (("pose", "pose_keypoints_2d"), ("left_hand", "hand_left_keypoints_2d"),
                              ("right_hand", "hand_right_keypoints_2d"),
                              ("face", "face_keypoints_2d"))
        }
        seen = parts["pose"][parts["pose"][:, 2] > 0, :2]
        area = float(np.prod(seen.max(axis=0) - seen.min(axis=0))) if len(seen) else 0.0
        if area > best_area:
            best, best_area = parts, area
    return best


def _triples(values: object, file: Path, where: str) -> np.ndarray:  # (N, 3)
    if not isinstance(values, list) or len(values) % 3:
        raise BadInput(f"{file.name}: {where} is not a list of x, y, confidence triples",
                       hint="is it an OpenPose file?")
    try:
        return np.array(values, np.float32).reshape(-1, 3)
    except (TypeError, ValueError) as error:
        raise BadInput(f"{file.name}: {where} holds non-numbers ({error})",
                       hint="re-run OpenPose, or remove the broken file") from error


def _has_points(*parts: np.ndarray) -> bool:
    return any(len(part) and (part[:, 2] > 0).any() for part in parts)


# --- CSV ------------------------------------------------------------------------------------

def load_csv(
    path: Path, fps: float, image_size: tuple[int, int], limbs: str | None = None,
    expected_frames: int | None = None,
) -> PoseSequence:
    """A CSV with a `frame` column and `<joint>_x`, `<joint>_y`[, `<joint>_visibility` or
    `<joint>_likelihood`] columns. Frames without a row have no person; the sequence runs to
    the last frame named (or to `expected_frames`)."""
    rows = _read_csv(path)
    if not rows:
        raise BadInput(f"{path.name} is empty", hint=DOCS_HINT)
    header = [column.strip() for column in rows[0][1]]
    joints, columns = _csv_columns(header, path)
    body = rows[1:]
    if not body:
        raise BadInput(f"{path.name} has a header but no rows", hint=DOCS_HINT)
    frame_column = header.index("frame")
    frames = []
    for line, row in body:
        cell = row[frame_column].strip() if frame_column < len(row) else ""
        if not re.fullmatch(r"\d+", cell):
            raise BadInput(f"{path.name}, line {line}: the frame number '{cell}' is not a "
                           "whole number of 0 or more", hint="number the frames 0, 1, 2, ...")
        frames.append(int(cell))
    total = max(frames) + 1
    if expected_frames is not None:
        if total > expected_frames:
            raise BadInput(f"{path.name} has a row for frame {total - 1} but the video has "
                           f"{expected_frames} frames",
                           hint="import the keypoints made from this very video")
        total = expected_frames
    keypoints = np.full((total, len(joints), 3), np.nan, np.float32)
    keypoints[..., 2] = 0.0
    seen: set[int] = set()
    for frame, (line, row) in zip(frames, body):
        if frame in seen:
            raise BadInput(f"{path.name}, line {line}: frame {frame} appears twice",
                           hint="one row per frame")
        seen.add(frame)
        for joint, (x_column, y_column, visibility_column) in enumerate(columns):
            x, y = _number(row, x_column, path, line), _number(row, y_column, path, line)
            visibility = 1.0 if visibility_column is None else _number(
                row, visibility_column, path, line)
            keypoints[frame, joint] = (x, y, visibility)
    rows_given = np.zeros(total, bool)
    rows_given[sorted(seen)] = True
    return _named_sequence(keypoints, joints, "imported_csv", limbs, path, fps, image_size,
                           rows_given)


def _csv_columns(
    header: list[str], path: Path
) -> tuple[tuple[str, ...], list[tuple[int, int, int | None]]]:
    """Joint names (canonical) and the (x, y, visibility) column of each, from a CSV header."""
    expected = ("frame, then for each joint <joint>_x, <joint>_y and optionally "
                "<joint>_visibility or <joint>_likelihood")
    if "frame" not in header:
        raise BadInput(f"{path.name} has no 'frame' column (its columns: "
                       f"{', '.join(header[:8])}{', ...' if len(header) > 8 else ''})",
                       hint=f"the columns must be: {expected}")
    positions: dict[str, dict[str, int]] = {}
    for position, column in enumerate(header):
        if column == "frame":
            continue
        for suffix in ("_x", "_y") + CSV_VISIBILITY_SUFFIXES:
            if column.endswith(suffix) and len(column) > len(suffix):
                kind = "visibility" if suffix in CSV_VISIBILITY_SUFFIXES else suffix[1:]
                joint = positions.setdefault(column[: -len(suffix)], {})
                if kind in joint:
                    raise BadInput(f"{path.name}: two {kind} columns for '{column[:-len(suffix)]}'",
                                   hint=f"the columns must be: {expected}")
                joint[kind] = position
                break
        else:
            raise BadInput(f"{path.name}: the column '{column}' is not a keypoint column",
                           hint=f"the columns must be: {expected}")
    if not positions:
        raise BadInput(f"{path.name} has no keypoint columns", hint=f"the columns must be: {expected}")
    for joint, kinds in positions.items():
        lacking = [f"{joint}_{kind}" for kind in ("x", "y") if kind not in kinds]
        if lacking:
            raise BadInput(f"{path.name} lacks the column(s) {', '.join(lacking)}",
                           hint=f"the columns must be: {expected}")
    names = tuple(positions)
    columns = [(positions[n]["x"], positions[n]["y"], positions[n].get("visibility"))
               for n in names]
    return names, columns


def load_deeplabcut(
    path: Path, fps: float, image_size: tuple[int, int], limbs: str | None = None
) -> PoseSequence:
    """DeepLabCut's CSV: header rows `scorer`, [`individuals`,] `bodyparts`, `coords` (x, y,
    likelihood), then one row per frame. The likelihood is kept as the visibility."""
    numbered = _read_csv(path)
    rows = [row for _, row in numbered]
    labels = [row[0].strip() for row in rows[:4]]
    multi_animal = labels[1:2] == ["individuals"]
    header_rows = 4 if multi_animal else 3
    expected = ["scorer"] + (["individuals"] if multi_animal else []) + ["bodyparts", "coords"]
    if labels[:header_rows] != expected:
        raise BadInput(
            f"{path.name} does not start with DeepLabCut's header rows "
            f"({', '.join(expected)}); it starts with {', '.join(labels[:header_rows])}",
            hint="pass the CSV DeepLabCut wrote (analyze_videos with save_as_csv=True)",
        )
    bodyparts, coords = rows[header_rows - 2], rows[header_rows - 1]
    first_individual = rows[1][1] if multi_animal and len(rows[1]) > 1 else None
    columns: dict[str, dict[str, int]] = {}
    for position in range(1, len(coords)):
        if multi_animal and rows[1][position] != first_individual:
            continue
        kind = coords[position].strip()
        if kind not in ("x", "y", "likelihood"):
            raise BadInput(f"{path.name}: coords row has '{kind}' in column {position + 1}",
                           hint="the coords row must repeat x, y, likelihood")
        columns.setdefault(bodyparts[position].strip(), {})[kind] = position
    incomplete = [part for part, kinds in columns.items() if set(kinds) != {"x", "y", "likelihood"}]
    if not columns or incomplete:
        raise BadInput(f"{path.name}: body part(s) {', '.join(incomplete) or '(none)'} lack "
                       "x, y and likelihood columns",
                       hint="pass the CSV DeepLabCut wrote, unchanged")
    body = numbered[header_rows:]
    if not body:
        raise BadInput(f"{path.name} has DeepLabCut's header but no rows", hint=DOCS_HINT)
    names = tuple(columns)
    keypoints = np.zeros((len(body), len(names), 3), np.float32)
    for frame, (line, row) in enumerate(body):
        for joint, name in enumerate(names):
            kinds = columns[name]
            keypoints[frame, joint] = (_number(row, kinds["x"], path, line),
                                       _number(row, kinds["y"], path, line),
                                       _number(row, kinds["likelihood"], path, line))
    return _named_sequence(keypoints, names, "imported_deeplabcut", limbs, path, fps, image_size)


def _read_csv(path: Path) -> list[tuple[int, list[str]]]:
    """The rows that are not blank, each with its line number."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [(line, row) for line, row in enumerate(csv.reader(handle), start=1)
                    if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise BadInput(f"{path.name} is not a readable CSV file: {error}",
                       hint="save it as UTF-8 CSV") from error


def _number(row: list[str], column: int, path: Path, line: int) -> float:
    """A cell as a float; an empty cell or NaN is NaN."""
    text = row[column].strip() if column < len(row) else ""
    if text == "" or text.lower() == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{path.name}, line {line}, column {column + 1}: '{text}' is not a number",
                       hint="keypoint cells hold numbers; leave a missing point empty") from None


# --- NPZ ------------------------------------------------------------------------------------

def load_npz(
    path: Path, fps: float | None = None, image_size: tuple[int, int] | None = None,
    limbs: str | None = None,
) -> PoseSequence:
    """`keypoints` (T, J, 2|3) + `names` (J,) [+ `limbs` (L, 2), `fps`, `image_size`], the test
    data's `kp2d` (T, J, 2) + `visible` (T, J) + `names`, or a motionxfer pose file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise BadInput(f"cannot read {path.name} as an .npz file: {error}",
                       hint="save it with numpy.savez (no pickled objects)") from error
    if "skeleton" in arrays and "version" in arrays:  # written by PoseSequence.save
        poses = PoseSequence.load(path)
        _check_agrees(path, "frame rate", poses.fps, fps)
        _check_agrees(path, "image size", poses.image_size, image_size)
        return poses
    if "keypoints" in arrays:
        values = arrays["keypoints"]
        if values.ndim != 3 or values.shape[2] not in (2, 3):
            raise BadInput(f"{path.name}: 'keypoints' has shape {values.shape}",
                           hint="'keypoints' must be (frames, joints, 2 or 3): x, y[, visibility]")
        keypoints = np.ones(values.shape[:2] + (3,), np.float32)
        keypoints[..., : values.shape[2]] = values
    elif "kp2d" in arrays and "visible" in arrays:
        values, visible = arrays["kp2d"], arrays["visible"]
        if values.ndim != 3 or values.shape[2] != 2 or visible.shape != values.shape[:2]:
            raise BadInput(f"{path.name}: 'kp2d' {values.shape} and 'visible' {visible.shape} "
                           "do not fit", hint="'kp2d' must be (T, J, 2), 'visible' (T, J)")
        keypoints = np.concatenate([values, visible[..., None]], axis=-1).astype(np.float32)
    else:
        raise BadInput(
            f"{path.name} has the arrays {', '.join(sorted(arrays)) or '(none)'}",
            hint="it needs 'keypoints' (T, J, 2|3) and 'names' (J,), optionally 'limbs', 'fps', "
            "'image_size'; or 'kp2d', 'visible' and 'names'",
        )
    if "names" not in arrays or arrays["names"].shape != (keypoints.shape[1],):
        raise BadInput(f"{path.name} needs 'names' with one joint name for each of its "
                       f"{keypoints.shape[1]} joints", hint="add names=np.array([...])")
    names = tuple(str(name) for name in arrays["names"])
    if "fps" in arrays:
        _check_agrees(path, "frame rate", float(arrays["fps"]), fps)
        fps = float(arrays["fps"])
    if "image_size" in arrays:
        stored = tuple(int(v) for v in np.asarray(arrays["image_size"]).ravel())
        if len(stored) != 2:
            raise BadInput(f"{path.name}: 'image_size' must be (width, height)",
                           hint="store image_size=np.array([width, height])")
        _check_agrees(path, "image size", stored, image_size)
        image_size = (stored[0], stored[1])
    fps, image_size = _need_fps(fps, path), _need_size(image_size, path)
    if "limbs" in arrays and limbs is None:
        limbs = _limbs_text(arrays["limbs"], names, path)
    return _named_sequence(keypoints, names, "imported_npz", limbs, path, fps, image_size)


def _limbs_text(limbs: np.ndarray, names: tuple[str, ...], path: Path) -> str:
    """An NPZ's `limbs` array (L, 2) of joint indices or names, as "a-b,c-d"."""
    if limbs.ndim != 2 or limbs.shape[1] != 2:
        raise BadInput(f"{path.name}: 'limbs' has shape {limbs.shape}",
                       hint="'limbs' must be (L, 2): pairs of joint indices or names")
    pairs = []
    for a, b in limbs.tolist():
        if isinstance(a, int) and isinstance(b, int):
            if not (0 <= a < len(names) and 0 <= b < len(names)):
                raise BadInput(f"{path.name}: the limb ({a}, {b}) names a joint beyond the "
                               f"{len(names)} there are", hint="index joints from 0")
            a, b = names[a], names[b]
        pairs.append(f"{canonical_joint_name(str(a))}-{canonical_joint_name(str(b))}")
    return ",".join(pairs)


def _check_agrees(path: Path, what: str, stored: object, given: object) -> None:
    if given is None:
        return
    if what == "frame rate":
        same = abs(float(stored) - float(given)) <= 1e-3 * float(given)  # type: ignore[arg-type]
    else:
        same = tuple(stored) == tuple(given)  # type: ignore[arg-type]
    if not same:
        raise BadInput(f"{path.name} says its {what} is {stored} but the video's is {given}",
                       hint="import the keypoints made from this very video, at its resolution")


# --- skeletons for imported names ----------------------------------------------------------

def canonical_joint_name(name: str) -> str:
    """motionxfer's spelling of a joint name: lower case words joined by "_", with OpenPose's
    one-letter sides spelt out (`LAnkle` -> `left_ankle`, `RBigToe` -> `right_big_toe`,
    `Left Ankle` -> `left_ankle`, `MidHip` -> `mid_hip`)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return re.sub(r"^(l|r)_", lambda m: "left_" if m.group(1) == "l" else "right_", text)


def parse_limbs(text: str, joint_names: tuple[str, ...], where: str) -> tuple[Limb, ...]:
    """Limbs from "a-b,b-c" (commas or new lines; '#' starts a comment), drawn in OpenPose's
    colours in the order given."""
    index = {name: k for k, name in enumerate(joint_names)}
    limbs = []
    items = [item.strip() for line in text.splitlines() for item in line.split("#")[0].split(",")]
    for item in (item for item in items if item):
        ends = item.split("-")
        if len(ends) != 2 or not all(end.strip() for end in ends):
            raise BadInput(f"{where}: '{item}' is not a limb written as 'joint-joint'",
                           hint="write limbs as 'left_hip-left_knee,left_knee-left_ankle'")
        a, b = (canonical_joint_name(end) for end in ends)
        unknown = [end for end in (a, b) if end not in index]
        if unknown:
            raise BadInput(f"{where}: the limb '{item}' names {', '.join(unknown)}, not a joint "
                           "of these keypoints",
                           hint=f"the joints are: {', '.join(joint_names)}")
        limbs.append(Limb((index[a],), (index[b],),
                          OPENPOSE_COLORS[len(limbs) % len(OPENPOSE_COLORS)], "body"))
    return tuple(limbs)


def limbs_sidecar(path: Path) -> Path:
    """Where limbs for the keypoints at `path` may be written: `<name>.limbs.txt` beside it."""
    return path.with_name(f"{path.stem}.limbs.txt")


def skeleton_for_names(
    names: tuple[str, ...], layout_name: str, limbs: str | None, path: Path
) -> Skeleton:
    """A layout for imported joint names: a known one if the names are exactly its joints, limbs
    from `limbs` or the sidecar file when given, else the conventional limbs among the names."""
    canonical = tuple(canonical_joint_name(name) for name in names)
    doubled = sorted({name for name in canonical if canonical.count(name) > 1})
    if doubled or "" in canonical:
        raise BadInput(f"{path.name}: joint names {', '.join(doubled) or '(empty)'} appear more "
                       "than once (after making them canonical)",
                       hint="give each joint one name; see docs/keypoints.md")
    sidecar = limbs_sidecar(path)
    if limbs is None and sidecar.is_file():
        limbs = sidecar.read_text(encoding="utf-8")
        where = sidecar.name
    else:
        where = "--limbs"
    known = next((s for s in KNOWN_SKELETONS.values() if s.joint_names == canonical), None)
    if limbs is not None:
        return Skeleton(layout_name, canonical, parse_limbs(limbs, canonical, where),
                        known.groups if known else ())
    if known is not None:
        return known
    conventional = conventional_limbs(canonical)
    if not conventional:
        raise BadInput(
            f"{path.name}: no limbs are known between its joints ({', '.join(canonical[:12])}"
            f"{', ...' if len(canonical) > 12 else ''})",
            hint=f"say which joints to join: --limbs 'a-b,b-c', or write them to {sidecar.name}; "
            "or name the joints as docs/keypoints.md does (left_ankle, ...)",
        )
    return Skeleton(layout_name, canonical, conventional)


# --- shared checks --------------------------------------------------------------------------

def _missing_to_nan(keypoints: np.ndarray) -> np.ndarray:  # (T, J, 3)
    missing = ~(keypoints[..., 2] > 0) | ~np.isfinite(keypoints[..., :2]).all(axis=-1)
    keypoints[missing] = (np.nan, np.nan, 0.0)
    return keypoints


def _check_visibility(keypoints: np.ndarray, name: str) -> None:
    visibility = keypoints[..., 2]
    if (visibility > 1.0 + 1e-6).any():
        raise BadInput(f"{name}: visibilities go up to {visibility.max():.3g}; they must lie in "
                       "[0, 1]", hint="store a confidence or likelihood between 0 and 1")


def _check_coordinates(keypoints: np.ndarray, image_size: tuple[int, int], name: str) -> None:
    """Refuse coordinates that cannot be pixels of `image_size` frames."""
    xy = keypoints[keypoints[..., 2] > 0][:, :2]  # (N, 2)
    if len(xy) == 0:
        return
    width, height = image_size
    if np.abs(xy).max() <= 1.5 and max(width, height) > 16:
        raise BadInput(f"{name}: every coordinate lies between -1.5 and 1.5: they look "
                       "normalised, not pixels",
                       hint=f"multiply x by the width ({width}) and y by the height ({height}) "
                       "(OpenPose: run without --keypoint_scale)")
    inside = ((xy[:, 0] > -0.5 * width) & (xy[:, 0] < 1.5 * width)
              & (xy[:, 1] > -0.5 * height) & (xy[:, 1] < 1.5 * height))
    if inside.mean() < 0.5:
        raise BadInput(f"{name}: most keypoints lie far outside a {width}x{height} frame",
                       hint="were they made from a video of another resolution? Import the "
                       "keypoints of this very video")


def _need_fps(fps: float | None, path: Path) -> float:
    if fps is None or not fps > 0:
        raise BadInput(f"the frame rate of the keypoints in {path.name} is not known",
                       hint="give the video they were made from (--video), or store fps in the "
                       "file")
    return float(fps)


def _need_size(image_size: tuple[int, int] | None, path: Path) -> tuple[int, int]:
    if image_size is None:
        raise BadInput(f"the image size of the keypoints in {path.name} is not known",
                       hint="give the video they were made from (--video), or store image_size "
                       "in the file")
    return (int(image_size[0]), int(image_size[1]))


def _named_sequence(
    keypoints: np.ndarray, names: tuple[str, ...], layout_name: str, limbs: str | None,
    path: Path, fps: float, image_size: tuple[int, int], rows_given: np.ndarray | None = None,
) -> PoseSequence:
    """Keypoints (T, J, 3) of named joints read from `path`, checked: missing points become
    NaN, a frame has a person when one of its points is there (and, for formats that may skip
    frames, its row was given)."""
    keypoints = _missing_to_nan(keypoints)
    _check_visibility(keypoints, path.name)
    _check_coordinates(keypoints, image_size, path.name)
    skeleton = skeleton_for_names(names, layout_name, limbs, path)
    present = (keypoints[..., 2] > 0).any(axis=1)
    if rows_given is not None:
        present &= rows_given
    return _sequence(keypoints, skeleton, fps, image_size, present)


def _sequence(
    keypoints: np.ndarray, skeleton: Skeleton, fps: float, image_size: tuple[int, int],
    present: np.ndarray,
) -> PoseSequence:
    return PoseSequence(
        keypoints=keypoints.astype(np.float32),
        skeleton=skeleton,
        fps=float(fps),
        image_size=(int(image_size[0]), int(image_size[1])),
        person_present=present.astype(bool),
        timestamps=np.arange(len(keypoints), dtype=np.float64) / fps,
    )
