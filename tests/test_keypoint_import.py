"""Importing keypoints made elsewhere: OpenPose JSON, CSV, DeepLabCut CSV, NPZ.

The files are written in a temporary folder from the exact joints of the fixture clip, so every
imported coordinate can be compared with the value that was written.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from motionxfer.errors import BadInput
from motionxfer.pose.keypoint_import import (
    canonical_joint_name,
    detect_layout,
    load_keypoints,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import (
    KNOWN_SKELETONS,
    OPENPOSE_BODY25,
    OPENPOSE_BODY25_NAMES,
    OPENPOSE_COCO18_NAMES,
    Skeleton,
    conventional_limbs,
)

FIXTURES = Path(__file__).parent / "fixtures"
SIZE = (256, 256)
FPS = 30.0


@pytest.fixture(scope="module")
def truth() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "extract_clip_keypoints.npz") as data:
        return {"xy": data["kp2d"][:10].astype(np.float32), "visible": data["visible"][:10],
                "names": np.array([str(n) for n in data["names"]])}


def truth_point(truth, frame: int, name: str) -> np.ndarray:
    if name == "mid_hip":
        name = "pelvis"
    return truth["xy"][frame, list(truth["names"]).index(name)]


def openpose_person(truth, frame: int, names=OPENPOSE_BODY25_NAMES, scale: float = 1.0,
                    hands: bool = False) -> dict:
    flat = []
    for name in names:
        x, y = truth_point(truth, frame, name) * scale
        flat += [float(x), float(y), 0.0 if name == "left_ear" else 0.9]  # left ear never found
    person = {"person_id": [-1], "pose_keypoints_2d": flat}
    if hands:
        wrist = truth_point(truth, frame, "left_wrist")
        person["hand_left_keypoints_2d"] = [float(wrist[0]), float(wrist[1]), 0.8] + [0.0] * 60
        person["hand_right_keypoints_2d"] = []
    return person


def write_openpose(folder: Path, truth, frames: int = 10, names=OPENPOSE_BODY25_NAMES) -> Path:
    folder.mkdir()
    for frame in range(frames):
        people = [] if frame == 3 else [openpose_person(truth, frame, names, hands=frame == 6)]
        if frame == 5:  # somebody small in the background, listed first
            small = openpose_person(truth, frame, names)
            small["pose_keypoints_2d"] = [v * 0.2 if k % 3 < 2 else v
                                          for k, v in enumerate(small["pose_keypoints_2d"])]
            people.insert(0, small)
        data = {"version": 1.3, "people": people}
        (folder / f"dance_{frame:012d}_keypoints.json").write_text(json.dumps(data))
    return folder


def test_openpose_folder_body25_with_hands(tmp_path, truth):
    folder = write_openpose(tmp_path / "json", truth)
    assert detect_layout(folder) == "openpose"
    poses = load_keypoints(folder, fps=FPS, image_size=SIZE, expected_frames=10)
    assert poses.skeleton is KNOWN_SKELETONS["openpose_body25_hands"]
    assert poses.num_frames == 10 and poses.image_size == SIZE and poses.fps == FPS
    skeleton = poses.skeleton
    for frame in (0, 5, 9):  # frame 5: the large person, not the first listed
        for name in ("left_ankle", "right_wrist", "neck", "mid_hip", "left_big_toe"):
            np.testing.assert_allclose(poses.xy[frame, skeleton.index(name)],
                                       truth_point(truth, frame, name), atol=1e-3)
        assert poses.visibility[frame, skeleton.index("nose")] == pytest.approx(0.9)
    # confidence 0 is missing
    assert np.isnan(poses.xy[:, skeleton.index("left_ear")]).all()
    assert (poses.visibility[:, skeleton.index("left_ear")] == 0).all()
    # a frame with nobody is kept and marked
    assert not poses.person_present[3] and poses.person_present[[0, 1, 2, 4, 5, 6]].all()
    assert (poses.visibility[3] == 0).all()
    # the left hand was found in frame 6 only, and only its wrist
    wrist = skeleton.index("left_hand_wrist")
    np.testing.assert_allclose(poses.xy[6, wrist], truth_point(truth, 6, "left_wrist"))
    hand = skeleton.group("left_hand")
    assert (poses.visibility[:, hand] > 0).sum() == 1


def test_openpose_coco18_is_told_apart_by_length(tmp_path, truth):
    folder = write_openpose(tmp_path / "json", truth, frames=4, names=OPENPOSE_COCO18_NAMES)
    poses = load_keypoints(folder, fps=FPS, image_size=SIZE)
    assert poses.skeleton.name == "openpose_coco18"
    np.testing.assert_allclose(poses.xy[2, poses.skeleton.index("right_knee")],
                               truth_point(truth, 2, "right_knee"), atol=1e-3)


def test_openpose_errors_name_the_problem(tmp_path, truth):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="no \\*_keypoints.json"):
        load_keypoints(empty, fps=FPS, image_size=SIZE)

    folder = write_openpose(tmp_path / "broken", truth, frames=4)
    (folder / "dance_000000000002_keypoints.json").write_text('{"people": [')
    with pytest.raises(BadInput, match="dance_000000000002_keypoints.json is not valid JSON"):
        load_keypoints(folder, fps=FPS, image_size=SIZE)

    folder = write_openpose(tmp_path / "gap", truth, frames=4)
    (folder / "dance_000000000002_keypoints.json").unlink()
    with pytest.raises(BadInput, match="jump from 1 to 3"):
        load_keypoints(folder, fps=FPS, image_size=SIZE)

    folder = write_openpose(tmp_path / "short", truth, frames=4)
    with pytest.raises(BadInput, match="4 frames but the video has 10"):
        load_keypoints(folder, fps=FPS, image_size=SIZE, expected_frames=10)

    with pytest.raises(BadInput, match="image size"):
        load_keypoints(folder, fps=FPS)


def test_normalised_coordinates_are_refused(tmp_path, truth):
    folder = tmp_path / "normalised"
    folder.mkdir()
    person = openpose_person(truth, 0, scale=1 / 256)
    (folder / "a_000000000000_keypoints.json").write_text(json.dumps({"people": [person]}))
    with pytest.raises(BadInput, match="normalised") as error:
        load_keypoints(folder, fps=FPS, image_size=SIZE)
    assert "--keypoint_scale" in error.value.hint


def write_csv(path: Path, truth, names, skip_frame: int | None = None,
              rename=lambda name: name, suffix: str = "_visibility") -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame"] + [f"{rename(n)}_{c}" for n in names
                                     for c in ("x", "y", suffix[1:])])
        for frame in range(len(truth["xy"])):
            if frame == skip_frame:
                continue
            row = [frame]
            for name in names:
                column = list(truth["names"]).index(name)
                x, y = truth["xy"][frame, column]
                visible = bool(truth["visible"][frame, column])
                row += [f"{x:.3f}", f"{y:.3f}", "1" if visible else "0"]
            writer.writerow(row)
    return path


def test_csv_with_conventional_names(tmp_path, truth):
    names = [str(n) for n in truth["names"]]
    path = write_csv(tmp_path / "dance.csv", truth, names, skip_frame=4)
    assert detect_layout(path) == "csv"
    poses = load_keypoints(path, fps=FPS, image_size=SIZE, expected_frames=10)
    skeleton = poses.skeleton
    assert skeleton.joint_names == tuple(names)
    ankle = skeleton.index("left_ankle")
    column = names.index("left_ankle")
    seen = truth["visible"][:, column] & (np.arange(10) != 4)
    np.testing.assert_allclose(poses.xy[seen, ankle], truth["xy"][seen, column], atol=1e-3)
    assert not poses.person_present[4] and np.isnan(poses.xy[4]).all()
    # not visible in the file: missing
    hidden = ~truth["visible"] & (np.arange(10) != 4)[:, None]
    assert hidden.any() and (poses.visibility[hidden] == 0).all()
    # the stick figure comes from the names: shoulders, arms, legs, feet ...
    pairs = {(skeleton.joint_names[l.start[0]], skeleton.joint_names[l.end[0]])
             for l in skeleton.limbs if len(l.start) == 1 and len(l.end) == 1}
    assert {("left_knee", "left_ankle"), ("left_ankle", "left_heel"),
            ("neck", "nose")} <= pairs


def test_csv_with_openpose_style_names_and_likelihoods(tmp_path, truth):
    names = ["left_ankle", "right_ankle", "left_knee", "right_knee"]
    path = write_csv(tmp_path / "legs.csv", truth, names, suffix="_likelihood",
                     rename=lambda name: {"left_ankle": "LAnkle", "right_ankle": "RAnkle",
                                          "left_knee": "Left Knee", "right_knee": "rightKnee"}[name])
    poses = load_keypoints(path, fps=FPS, image_size=SIZE)
    assert poses.skeleton.joint_names == tuple(names)
    assert len(poses.skeleton.limbs) == 2  # both shins


@pytest.mark.parametrize(("header", "message"), [
    (["time", "nose_x", "nose_y"], "no 'frame' column"),
    (["frame", "nose_x", "nose_y", "nose_depth"], "'nose_depth' is not a keypoint column"),
    (["frame", "nose_x", "nose_Y"], "'nose_Y' is not a keypoint column"),
    (["frame", "nose_x"], "lacks the column\\(s\\) nose_y"),
])
def test_csv_with_wrong_columns_lists_the_expected_ones(tmp_path, header, message):
    path = tmp_path / "bad.csv"
    path.write_text(",".join(header) + "\n" + ",".join(["0"] + ["1"] * (len(header) - 1)) + "\n")
    with pytest.raises(BadInput, match=message) as error:
        load_keypoints(path, fps=FPS, image_size=SIZE)
    assert "<joint>_x, <joint>_y" in error.value.hint


def test_csv_cell_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("frame,nose_x,nose_y\n0,10,20\n1,11,abc\n")
    with pytest.raises(BadInput, match="line 3, column 3: 'abc'"):
        load_keypoints(path, fps=FPS, image_size=SIZE, limbs="nose-nose")
    path.write_text("frame,nose_x,nose_y\n0,10,20\n0,11,21\n")
    with pytest.raises(BadInput, match="frame 0 appears twice"):
        load_keypoints(path, fps=FPS, image_size=SIZE, limbs="nose-nose")
    path.write_text("frame,nose_x,nose_y\n0,10,20\n12,11,21\n")
    with pytest.raises(BadInput, match="frame 12 but the video has 10"):
        load_keypoints(path, fps=FPS, image_size=SIZE, limbs="nose-nose", expected_frames=10)


def animal_csv(path: Path) -> Path:
    path.write_text(
        "frame,snout_x,snout_y,tailbase_x,tailbase_y,paw_x,paw_y\n"
        "0,10,20,60,80,30,90\n1,11,21,61,81,,\n2,12,22,62,82,31,91\n"
    )
    return path


def test_unknown_joint_names_need_limbs(tmp_path):
    path = animal_csv(tmp_path / "mouse.csv")
    with pytest.raises(BadInput, match="no limbs are known") as error:
        load_keypoints(path, fps=FPS, image_size=SIZE)
    assert "--limbs" in error.value.hint and "mouse.limbs.txt" in error.value.hint

    poses = load_keypoints(path, fps=FPS, image_size=SIZE, limbs="snout-tailbase, tailbase-paw")
    assert [(l.start, l.end) for l in poses.skeleton.limbs] == [((0,), (1,)), ((1,), (2,))]
    assert np.isnan(poses.xy[1, 2]).all() and poses.visibility[1, 2] == 0  # empty cells
    assert poses.visibility[0, 0] == 1.0  # no visibility column: seen

    (tmp_path / "mouse.limbs.txt").write_text("# the spine\nsnout-tailbase\n")
    poses = load_keypoints(path, fps=FPS, image_size=SIZE)
    assert len(poses.skeleton.limbs) == 1

    with pytest.raises(BadInput, match="names whisker") as error:
        load_keypoints(path, fps=FPS, image_size=SIZE, limbs="snout-whisker")
    assert "snout, tailbase, paw" in error.value.hint


def write_deeplabcut(path: Path, truth, parts, individuals: tuple[str, ...] = ()) -> Path:
    header = [["scorer"], ["bodyparts"], ["coords"]]
    if individuals:
        header.insert(1, ["individuals"])
    for individual in individuals or ("",):
        for part in parts:
            for coord in ("x", "y", "likelihood"):
                header[0].append("DLC_resnet50_danceNov21shuffle1_100000")
                if individuals:
                    header[1].append(individual)
                header[-2].append(part)
                header[-1].append(coord)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(header)
        for frame in range(len(truth["xy"])):
            row = [frame]
            for number, _ in enumerate(individuals or ("",)):
                for part in parts:
                    x, y = truth_point(truth, frame, part) + 50 * number
                    row += [x, y, 0.95 if part != "nose" else 0.0]
            writer.writerow(row)
    return path


@pytest.mark.parametrize("individuals", [(), ("dancer", "other")])
def test_deeplabcut_csv(tmp_path, truth, individuals):
    parts = ["nose", "left_hip", "left_knee", "left_ankle"]
    path = write_deeplabcut(tmp_path / "danceDLC.csv", truth, parts, individuals)
    assert detect_layout(path) == "deeplabcut"
    poses = load_keypoints(path, fps=FPS, image_size=SIZE, expected_frames=10)
    assert poses.skeleton.joint_names == tuple(parts)
    knee = poses.skeleton.index("left_knee")
    np.testing.assert_allclose(poses.xy[:, knee], truth["xy"][:, list(truth["names"]).index(
        "left_knee")], atol=1e-3)  # the first individual's
    assert poses.visibility[0, knee] == pytest.approx(0.95)
    assert (poses.visibility[:, poses.skeleton.index("nose")] == 0).all()


def test_npz_documented_layout(tmp_path, truth):
    path = tmp_path / "poses.npz"
    names = np.array(["left_hip", "left_knee", "left_ankle"])
    columns = [list(truth["names"]).index(n) for n in names]
    keypoints = np.concatenate([truth["xy"][:, columns], np.full((10, 3, 1), 0.7)], axis=-1)
    keypoints[2, 1] = (np.nan, np.nan, 0.0)
    np.savez(path, keypoints=keypoints, names=names, limbs=np.array([[0, 1], [1, 2]]),
             fps=np.float64(25.0), image_size=np.array([256, 256]))
    assert detect_layout(path) == "npz"
    poses = load_keypoints(path)  # frame rate and size from the file
    assert poses.fps == 25.0 and poses.image_size == SIZE
    np.testing.assert_allclose(poses.keypoints[0], keypoints[0], atol=1e-5)
    assert np.isnan(poses.xy[2, 1]).all()
    assert len(poses.skeleton.limbs) == 2
    with pytest.raises(BadInput, match="frame rate is 25.0 but the video's is 30.0"):
        load_keypoints(path, fps=30.0, image_size=SIZE)
    with pytest.raises(BadInput, match="image size"):
        load_keypoints(path, fps=25.0, image_size=(512, 512))


def test_npz_in_the_test_data_layout(truth):
    path = FIXTURES / "extract_clip_keypoints.npz"  # kp2d, visible, names
    poses = load_keypoints(path, fps=FPS, image_size=SIZE, expected_frames=60)
    names = list(truth["names"])
    assert poses.skeleton.joint_names == tuple(names)
    visible = truth["visible"]
    np.testing.assert_allclose(poses.xy[:10][visible], truth["xy"][visible], atol=1e-4)
    assert (poses.visibility[:10][~visible] == 0).all()
    assert poses.skeleton.limbs  # conventional names give a stick figure
    with pytest.raises(BadInput, match="60 frames but the video has 61"):
        load_keypoints(path, fps=FPS, image_size=SIZE, expected_frames=61)


def test_npz_errors(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, points=np.zeros((3, 2, 2)))
    with pytest.raises(BadInput, match="has the arrays points") as error:
        load_keypoints(path, fps=FPS, image_size=SIZE)
    assert "'keypoints'" in error.value.hint
    np.savez(path, keypoints=np.ones((3, 2, 2)) * 10)
    with pytest.raises(BadInput, match="needs 'names'"):
        load_keypoints(path, fps=FPS, image_size=SIZE)


def test_a_motionxfer_pose_file_is_read_back(tmp_path, truth):
    skeleton = Skeleton("test", ("left_knee", "left_ankle"), conventional_limbs(
        ("left_knee", "left_ankle")))
    keypoints = np.ones((4, 2, 3), np.float32) * 20
    poses = PoseSequence(keypoints, skeleton, FPS, SIZE, np.ones(4, bool), np.arange(4) / FPS)
    poses.save(tmp_path / "poses.npz")
    loaded = load_keypoints(tmp_path / "poses.npz", fps=FPS, image_size=SIZE)
    np.testing.assert_array_equal(loaded.keypoints, keypoints)


def test_unknown_files_and_layouts(tmp_path):
    path = tmp_path / "poses.txt"
    path.write_text("hello")
    with pytest.raises(BadInput, match="cannot tell the keypoint layout"):
        load_keypoints(path, fps=FPS, image_size=SIZE)
    with pytest.raises(BadInput, match="unknown keypoint layout"):
        load_keypoints(path, layout="alphapose", fps=FPS, image_size=SIZE)
    with pytest.raises(BadInput, match="no keypoints at"):
        load_keypoints(tmp_path / "missing.csv")


@pytest.mark.parametrize(("name", "canonical"), [
    ("LAnkle", "left_ankle"), ("RBigToe", "right_big_toe"), ("MidHip", "mid_hip"),
    ("Left Ankle", "left_ankle"), ("leftAnkle", "left_ankle"), ("l_ankle", "left_ankle"),
    ("left_ankle", "left_ankle"), ("Nose", "nose"), ("tail-base", "tail_base"),
])
def test_canonical_joint_names(name, canonical):
    assert canonical_joint_name(name) == canonical


def test_openpose_layouts_use_the_common_joint_names():
    skeleton = OPENPOSE_BODY25
    for name in ("nose", "neck", "mid_hip", "left_eye", "left_ear", "left_shoulder",
                 "left_wrist", "left_ankle", "left_heel", "left_big_toe", "right_small_toe"):
        assert skeleton.has(name)
    assert skeleton.num_joints == 25 and skeleton.group("body") == slice(0, 25)
    assert Skeleton.from_json(skeleton.to_json()) == skeleton
    full = KNOWN_SKELETONS["openpose_body25_hands_face"]
    assert full.num_joints == 25 + 21 + 21 + 70
    assert full.joint_names[full.group("left_hand")][0] == "left_hand_wrist"
    assert {limb.group for limb in full.limbs} == {"body", "left_hand", "right_hand", "face"}
