"""What a training run leaves to look at: JSON lines of losses and PNG grids of samples."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer.io.images import to_images


def append_log(path: Path, entry: dict[str, Any]) -> None:
    """One JSON line, written with one call and flushed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_finite(entry), sort_keys=True, allow_nan=False)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()


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


