"""The animator's checkpoint: self-describing, written atomically, read strictly.

One `torch.save` file of plain values and tensors (it loads with `weights_only=True`):

    format                "motionxfer-animator" (a personal model says "motionxfer-checkpoint")
    schema_version, tool_version, created
    preset                the preset it was started from ("tiny", "256")
    config                AnimatorConfig.to_dict(): the architecture, loss weights, transforms
    train                 AnimatorTrainConfig.to_dict(): the run's settings
    step                  optimizer steps done
    data                  what it was trained on: videos, frames, their fingerprint
    person_check          the keypoint confidence and image contrast seen on training frames
                          (motionxfer.animation.checks), for refusing images with nobody in them
    models                state dicts: keypoint_detector, dense_motion, generator
                          (+ discriminator when trained with one)
    optimizers            their state dicts (absent in an inference export)

A personal model (motionxfer.checkpoint) passed here, or this file passed where a personal model
is expected, is a `CheckpointError` that says which command takes it.
"""

from __future__ import annotations

import dataclasses
import datetime
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from motionxfer import __version__
from motionxfer.animation.model import Animator, AnimatorConfig
from motionxfer.errors import BadInput, CheckpointError
from motionxfer.io.files import atomic_write

ANIMATOR_FORMAT = "motionxfer-animator"
ANIMATOR_SCHEMA = 1
PERSONAL_MODEL_FORMAT = "motionxfer-checkpoint"  # motionxfer.checkpoint.CHECKPOINT_FORMAT
NETWORKS = ("keypoint_detector", "dense_motion", "generator")
REQUIRED_KEYS = ("preset", "config", "train", "step", "data", "person_check", "models")


@dataclass(frozen=True)
class AnimatorCheckpoint:
    """An animator checkpoint read once, as typed values."""

    preset: str
    config: AnimatorConfig
    train: dict[str, Any]  # AnimatorTrainConfig.to_dict() (the training module reads it)
    step: int
    models: dict[str, dict[str, torch.Tensor]]
    data: dict[str, Any] = field(default_factory=dict)
    person_check: dict[str, float] = field(default_factory=dict)
    optimizers: dict[str, Any] | None = None  # None: an inference export, not resumable
    path: Path | None = None
    schema_version: int = ANIMATOR_SCHEMA
    tool_version: str = __version__
    created: str = ""

    @property
    def trainable(self) -> bool:
        return self.optimizers is not None

    def summary(self) -> dict[str, Any]:
        return {"preset": self.preset, "image_size": self.config.image_size, "step": self.step,
                "keypoints": self.config.num_keypoints,
                "use_occlusion": self.config.use_occlusion,
                "estimate_jacobian": self.config.estimate_jacobian,
                "videos": len(self.data.get("videos", [])),
                "frames": self.data.get("frames")}

    # --- files ---------------------------------------------------------------------------
    @staticmethod
    def load(path: str | Path) -> AnimatorCheckpoint:
        path = Path(path)
        payload = read_animator_payload(path)
        try:
            config = AnimatorConfig.from_dict(payload["config"])
        except BadInput as error:
            raise CheckpointError(f"{path}: {error.message}",
                                  hint="the file is damaged: train the animator again") from error
        if not isinstance(payload["models"], dict) or any(
                name not in payload["models"] for name in NETWORKS):
            raise CheckpointError(f"{path} lacks the weights of one of {', '.join(NETWORKS)}",
                                  hint="the file is damaged: train the animator again")
        return AnimatorCheckpoint(
            preset=str(payload["preset"]), config=config, train=dict(payload["train"]),
            step=int(payload["step"]), models=payload["models"], data=dict(payload["data"]),
            person_check={k: float(v) for k, v in dict(payload["person_check"]).items()},
            optimizers=payload.get("optimizers"), path=path,
            schema_version=int(payload["schema_version"]),
            tool_version=str(payload.get("tool_version", "")),
            created=str(payload.get("created", "")))

    def payload(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "format": ANIMATOR_FORMAT, "schema_version": ANIMATOR_SCHEMA,
            "tool_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "preset": self.preset, "config": self.config.to_dict(), "train": dict(self.train),
            "step": int(self.step), "data": dict(self.data),
            "person_check": dict(self.person_check), "models": self.models,
        }
        if self.optimizers is not None:
            values["optimizers"] = self.optimizers
        return values

    def save(self, path: str | Path) -> AnimatorCheckpoint:
        """Write atomically: on failure the previous file at `path` is untouched."""
        path = Path(path)
        try:
            with atomic_write(path) as handle:
                torch.save(self.payload(), handle)
        except OSError as error:
            raise CheckpointError(
                f"could not write the animator checkpoint {path}: {error.strerror or error}",
                hint=f"free disk space in {path.parent}; the previous file there is intact",
            ) from error
        return dataclasses.replace(self, path=path)

    def inference_only(self) -> AnimatorCheckpoint:
        """The three networks only (no discriminator, no optimizer state): what animate needs."""
        kept = {name: self.models[name] for name in NETWORKS}
        return dataclasses.replace(self, models=kept, optimizers=None)

    # --- networks ------------------------------------------------------------------------
    def build_animator(self, device: str | torch.device = "cpu") -> Animator:
        """The three networks with their weights (strict), in eval mode."""
        animator = Animator(self.config)
        for name in NETWORKS:
            try:
                getattr(animator, name).load_state_dict(self.models[name], strict=True)
            except RuntimeError as error:
                raise CheckpointError(
                    f"the {name} weights in {self.path} do not fit its architecture: "
                    f"{str(error).splitlines()[0]}",
                    hint="the file is damaged: train the animator again") from error
        return animator.to(device).eval()


def read_animator_payload(path: Path) -> dict[str, Any]:
    """The payload of an animator file, validated (format, schema, keys)."""
    if not path.is_file():
        raise CheckpointError(f"no animator model at {path}",
                              hint="train one with: motionxfer train-animator VIDEOS_DIR "
                              f"-o {path.name}, or omit --model to use the bundled one")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile,
            AttributeError, KeyError) as error:
        raise CheckpointError(
            f"{path} is corrupt or not a motionxfer model ({type(error).__name__})",
            hint="pass a file written by motionxfer train-animator") from error
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error}",
                              hint="check the file's permissions") from error
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind == PERSONAL_MODEL_FORMAT:
        raise CheckpointError(
            f"{path} is a personal model (motionxfer train-target), not an animator",
            hint="animate a person's project with: motionxfer transfer PROJECT DRIVING.mp4; "
            "for one image pass an animator model (motionxfer train-animator) or omit --model")
    if kind != ANIMATOR_FORMAT:
        raise CheckpointError(f"{path} is not a motionxfer animator model",
                              hint="pass a file written by motionxfer train-animator")
    schema = payload.get("schema_version")
    if not isinstance(schema, int) or schema > ANIMATOR_SCHEMA:
        raise CheckpointError(
            f"{path} was written by a newer motionxfer ({payload.get('tool_version')}, animator "
            f"schema {schema}; this one reads schema {ANIMATOR_SCHEMA})",
            hint="upgrade motionxfer: pip install -U motionxfer")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path} is incomplete (no {', '.join(missing)})",
                              hint="train the animator again, or restore a backup")
    return payload
