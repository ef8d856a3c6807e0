"""motionxfer: human video motion transfer (Everybody Dance Now, done properly).

The library is usable from Python; the `motionxfer` command is a thin layer over it:

    import motionxfer

    project = motionxfer.init_project("me", target="me.mp4")
    motionxfer.extract_poses(project, project.target)
    plan = motionxfer.training_setup(project, "256", steps=20_000)
    motionxfer.train_plan(project, plan)
    motionxfer.inference.transfer(project, "dancer.mp4", "me_dancing.mp4")

Names are imported on first use, so `import motionxfer` does not load torch or MediaPipe.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "Project": "motionxfer.project",
    "PoseSequence": "motionxfer.pose.sequence",
    "init_project": "motionxfer.pipeline",
    "extract_poses": "motionxfer.pipeline",
    "import_keypoints": "motionxfer.pipeline",
    "normalize_source": "motionxfer.pipeline",
    "source_record": "motionxfer.pipeline",
    "make_preview": "motionxfer.inference.preview",
    "training_setup": "motionxfer.training.train",
    "train_target": "motionxfer.training.train",
    "train_plan": "motionxfer.training.train",
    "TrainConfig": "motionxfer.training.config",
    "Checkpoint": "motionxfer.checkpoint",
    "Conditioning": "motionxfer.conditioning",
    "BackendConfig": "motionxfer.inference.frame_generator",
    "TransferConfig": "motionxfer.inference.transfer",
    "transfer": "motionxfer.inference.transfer",
    "transfer_many": "motionxfer.inference.transfer",
    "EvaluateConfig": "motionxfer.evaluation.evaluate",
    "evaluate_videos": "motionxfer.evaluation.evaluate",
    "evaluate_holdout": "motionxfer.evaluation.protocols",
}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'motionxfer' has no attribute {name!r}")
