"""What a training run leaves to look at: JSON lines of losses and PNG grids of samples."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer.io.files import write_text
from motionxfer.io.images import to_images


def append_log(path: Path, entry: dict[str, Any]) -> None:
    """One JSON line, written with one call and flushed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_finite(entry), sort_keys=True, allow_nan=False)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()


def drop_steps_after(path: Path, last_steps: dict[str, int]) -> int:
    """Remove the lines of steps after `last_steps[stage]` (the steps a run starts from: a
    checkpoint's, or 0 from scratch), so that the steps run again are logged once; returns how
    many lines went. Lines of other stages, and lines that do not parse (a line cut by a crash),
    are kept as they are; the file is rewritten atomically, only when something goes."""
    if not path.is_file():
        return 0
    kept: list[str] = []
    dropped = 0
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):  # the last line, cut by a crash: the next one would join it
            dropped += 1
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if (isinstance(entry, dict) and isinstance(entry.get("step"), int)
                and entry.get("stage") in last_steps
                and entry["step"] > last_steps[entry["stage"]]):
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        write_text(path, "".join(kept))
    return dropped


def _finite(value: Any) -> Any:
    """NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def sample_grid(poses: torch.Tensor, fakes: torch.Tensor, reals: torch.Tensor,
                pose_to_rgb: Callable[[np.ndarray], np.ndarray], rows: int = 4) -> np.ndarray:
    """(H * rows, W * 3, 3) uint8: pose input (as `pose_to_rgb` shows it) | generated | real,
    one sample per row."""
    count = min(rows, poses.shape[0])
    columns = [pose_to_rgb(to_images(poses[:count])), to_images(fakes[:count]),
               to_images(reals[:count])]
    return np.concatenate(
        [np.concatenate([column[row] for column in columns], axis=1) for row in range(count)],
        axis=0,
    )


