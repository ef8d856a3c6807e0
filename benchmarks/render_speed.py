"""Stick-figure rendering speed: frames per second of `render_stick_figure` (and label maps).

    python benchmarks/render_speed.py --size 512 --frames 300 --layout holistic

Poses: the ground-truth body of tests/fixtures/norm_gallery_id3.npz (228 frames of a dancing
body, 256x256) put into MediaPipe's holistic layout, with synthetic hands (five fingers fanned
out from each wrist along the forearm) and a synthetic face (every contour of the face mesh laid
on ellipses around the head, so its strokes are as short as a real face's). Layout "body" draws
the same poses with hands and face switched off.

Prints the median frames/s of --repeats runs, and the load average, since other processes share
the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from motionxfer.pose import face_topology
from motionxfer.pose.render import RenderStyle, render_label_maps, render_stick_figure
from motionxfer.pose.skeleton import (
    FACE_START,
    HAND_NAMES,
    LEFT_HAND_START,
    MEDIAPIPE_HOLISTIC,
    RIGHT_HAND_START,
)

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "norm_gallery_id3.npz"
# ground-truth joint -> MediaPipe body joint with that meaning
BODY_MATCHES = {
    "nose": "nose", "left_eye": "left_eye", "right_eye": "right_eye", "left_ear": "left_ear",
    "right_ear": "right_ear", "left_shoulder": "left_shoulder",
    "right_shoulder": "right_shoulder", "left_elbow": "left_elbow", "right_elbow": "right_elbow",
    "left_wrist": "left_wrist", "right_wrist": "right_wrist", "left_hip": "left_hip",
    "right_hip": "right_hip", "left_knee": "left_knee", "right_knee": "right_knee",
    "left_ankle": "left_ankle", "right_ankle": "right_ankle", "left_heel": "left_heel",
    "right_heel": "right_heel", "left_big_toe": "left_foot_index",
    "right_big_toe": "right_foot_index",
}


def _hand(wrist: np.ndarray, elbow: np.ndarray) -> np.ndarray:
    """(21, 2) an open hand: wrist, then 4 joints along each of 5 fingers fanned over 80 deg."""
    forearm = wrist - elbow
    length = max(float(np.hypot(*forearm)), 1e-3)
    direction = forearm / length
    points = [wrist]
    for finger in range(5):
        angle = np.deg2rad(-40 + 20 * finger)
        rotated = np.array([
            direction[0] * np.cos(angle) - direction[1] * np.sin(angle),
            direction[0] * np.sin(angle) + direction[1] * np.cos(angle),
        ])
        points += [wrist + rotated * length * 0.12 * (step + 1) for step in range(4)]
    return np.array(points)


def _contour_order(edges: tuple[tuple[int, int], ...]) -> list[list[int]]:
    """The points of each connected piece of a contour, in walking order."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    pieces, visited = [], set()
    for first in sorted(neighbours, key=lambda n: (len(neighbours[n]), n)):
        if first in visited:
            continue
        piece, stack = [], [first]
        while stack:
            node = stack.pop()
            if node in visited:
                continue
            visited.add(node)
            piece.append(node)
            stack += sorted(n for n in neighbours[node] if n not in visited)
        pieces.append(piece)
    return pieces


def _face_layout() -> np.ndarray:
    """(468, 2) face points in head units (head width ~1), contours on ellipses."""
    layout = np.zeros((468, 2))
    parts = [  # edges, centre, radii
        (face_topology.FACE_OVAL, (0.0, 0.0), (0.5, 0.65)),
        (face_topology.LIPS, (0.0, 0.35), (0.2, 0.07)),
        (face_topology.LEFT_EYE, (0.2, -0.1), (0.1, 0.04)),
        (face_topology.RIGHT_EYE, (-0.2, -0.1), (0.1, 0.04)),
        (face_topology.LEFT_EYEBROW, (0.2, -0.22), (0.13, 0.03)),
        (face_topology.RIGHT_EYEBROW, (-0.2, -0.22), (0.13, 0.03)),
    ]
    for edges, centre, radii in parts:
        for shrink, piece in enumerate(_contour_order(edges)):
            angles = np.linspace(0, 2 * np.pi, len(piece), endpoint=False)
            factor = 1.0 - 0.3 * shrink
            layout[piece, 0] = centre[0] + radii[0] * factor * np.cos(angles)
            layout[piece, 1] = centre[1] + radii[1] * factor * np.sin(angles)
    return layout


def holistic_poses() -> tuple[np.ndarray, tuple[int, int]]:
    """(T, 543, 3) holistic keypoints built from the fixture, and their image size."""
    with np.load(FIXTURE) as data:
        names = [str(n) for n in data["names"]]
        ground_truth = data["kp2d"].astype(np.float64)  # (T, 30, 2)
        image_size = (int(data["image_size"][0]), int(data["image_size"][1]))
    frames = ground_truth.shape[0]
    keypoints = np.zeros((frames, MEDIAPIPE_HOLISTIC.num_joints, 3))
    keypoints[..., :2] = np.nan
    for gt_name, mp_name in BODY_MATCHES.items():
        keypoints[:, MEDIAPIPE_HOLISTIC.index(mp_name), :2] = ground_truth[:, names.index(gt_name)]
        keypoints[:, MEDIAPIPE_HOLISTIC.index(mp_name), 2] = 1.0
    face = _face_layout()
    for t in range(frames):
        joint = {name: ground_truth[t, names.index(name)] for name in names}
        for side, start in (("left", LEFT_HAND_START), ("right", RIGHT_HAND_START)):
            hand = _hand(joint[f"{side}_wrist"], joint[f"{side}_elbow"])
            keypoints[t, start:start + len(HAND_NAMES), :2] = hand
            keypoints[t, start:start + len(HAND_NAMES), 2] = 1.0
        head_width = float(np.hypot(*(joint["left_ear"] - joint["right_ear"]))) + 4.0
        keypoints[t, FACE_START:, :2] = joint["nose"] + face * head_width
        keypoints[t, FACE_START:, 2] = 1.0
    return keypoints.astype(np.float32), image_size


def time_frames(render, keypoints: np.ndarray, frames: int) -> float:
    start = time.perf_counter()
    for index in range(frames):
        render(keypoints[index % keypoints.shape[0]])
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description="stick-figure rendering speed")
    parser.add_argument("--size", type=int, default=512, help="output width and height")
    parser.add_argument("--frames", type=int, default=300, help="frames per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs; the median is printed")
    parser.add_argument("--layout", choices=("holistic", "body"), default="holistic")
    parser.add_argument("--label-maps", action="store_true", help="time render_label_maps too")
    arguments = parser.parse_args()

    keypoints, image_size = holistic_poses()
    holistic = arguments.layout == "holistic"
    style = RenderStyle(draw_hands=holistic, draw_face=holistic)
    size = arguments.size
    renderers = {
        "stick figure (RGB)": lambda frame: render_stick_figure(
            frame, MEDIAPIPE_HOLISTIC, size, size, image_size, style),
    }
    if arguments.label_maps:
        renderers["label maps"] = lambda frame: render_label_maps(
            frame, MEDIAPIPE_HOLISTIC, size, size, image_size, style)

    load_before = os.getloadavg()[0]
    for name, render in renderers.items():
        time_frames(render, keypoints, 20)  # warm-up: plan cache, first allocations
        rates = [time_frames(render, keypoints, arguments.frames) for _ in range(arguments.repeats)]
        print(f"{name}: {statistics.median(rates):.0f} frames/s median of {arguments.repeats} runs "
              f"(min {min(rates):.0f}, max {max(rates):.0f}), {size}x{size}, "
              f"layout {arguments.layout}, {arguments.frames} frames per run")
    print(f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}, "
          f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
