"""Checkpoints that describe themselves, written atomically and read strictly.

A checkpoint is one `torch.save` file holding only plain values (dicts, lists, strings, numbers,
tensors), so it loads with `torch.load(..., weights_only=True)` and unpickles no code:

    format, schema_version, tool_version, created
    preset                  the preset's name
    project_id              sha256 of the target video (a checkpoint belongs to one person)
    working_size            [width, height] of the frames the generator makes
    generator_step, face_refiner_step
    configs                 generator, discriminator, temporal_discriminator, face_refiner (or
                            None when switched off), losses, train: each its dataclass as a dict
    models                  state dicts by name ("generator", "discriminator", ...)
    optimizers, schedulers, scaler      their state dicts (absent in an inference export)
    rng                     python, numpy, torch CPU and CUDA states, and the sampler's state

Resuming takes everything from the checkpoint; `load_generator(path)` rebuilds the generator with
no other input. `export_inference` keeps only what transfer needs (a much smaller file).
"""

from __future__ import annotations

import datetime
import hashlib
import pickle
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer import __version__
from motionxfer.config import from_dict
from motionxfer.errors import CheckpointError
from motionxfer.fileio import atomic_write
from motionxfer.networks.face_refiner import FaceRefiner, FaceRefinerConfig
from motionxfer.networks.generator import Generator, GeneratorConfig

CHECKPOINT_FORMAT = "motionxfer-checkpoint"
CHECKPOINT_SCHEMA = 1
REQUIRED_KEYS = ("preset", "project_id", "working_size", "generator_step", "face_refiner_step",
                 "configs", "models")
TRAINING_KEYS = ("optimizers", "schedulers", "scaler", "rng")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself (everything but the tensors)."""

    path: Path
    schema_version: int
    tool_version: str
    created: str
    preset: str
    project_id: str
    working_size: tuple[int, int]  # (width, height)
    generator_step: int
    face_refiner_step: int
    generator: GeneratorConfig
    face_refiner: FaceRefinerConfig | None
    configs: dict[str, Any]  # every config as saved (discriminators, losses, train)
    trainable: bool  # False for an inference export (no optimizer or RNG states)


def new_payload(**values: Any) -> dict[str, Any]:
    """The header every checkpoint starts with, plus `values`."""
    return {
        "format": CHECKPOINT_FORMAT,
        "schema_version": CHECKPOINT_SCHEMA,
        "tool_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **values,
    }


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write atomically: on any failure (a full disk) the previous file at `path` is untouched."""
    path = Path(path)
    try:
        with atomic_write(path) as handle:
            torch.save(payload, handle)
    except OSError as error:
        raise CheckpointError(
            f"could not write the checkpoint {path}: {error.strerror or error}",
            hint=f"free disk space in {path.parent}; the previous checkpoint there is intact, "
            "continue from it with --resume",
        ) from error


def read_checkpoint(path: str | Path, project_id: str | None = None) -> dict[str, Any]:
    """The checkpoint's payload, validated; `project_id` given: it must be that project's."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}",
            hint="train one first: motionxfer train-target PROJECT",
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile,
            AttributeError, KeyError) as error:
        raise CheckpointError(
            f"{path} is corrupt or not a motionxfer checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})",
            hint="delete it and train again (motionxfer train-target PROJECT), or restore a backup",
        ) from error
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error}",
                              hint="check the file's permissions") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a motionxfer checkpoint",
            hint="pass a file written by motionxfer train-target",
        )
    schema = payload.get("schema_version")
    if not isinstance(schema, int) or schema > CHECKPOINT_SCHEMA:
        raise CheckpointError(
            f"{path} was written by a newer motionxfer ({payload.get('tool_version')}, checkpoint "
            f"schema {schema}; this one reads schema {CHECKPOINT_SCHEMA})",
            hint="upgrade motionxfer: pip install -U motionxfer",
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(
            f"{path} is incomplete (no {', '.join(missing)})",
            hint="delete it and train again, or restore a backup",
        )
    if project_id is not None and payload["project_id"] != project_id:
        raise CheckpointError(
            f"{path} belongs to another project (its target video is "
            f"{str(payload['project_id'])[:12]}..., this project's is {project_id[:12]}...)",
            hint="use the checkpoint of this project, or train this project from scratch "
            "(train-target without --resume)",
        )
    return payload


def checkpoint_info(payload: dict[str, Any], path: str | Path) -> CheckpointInfo:
    configs = payload["configs"]
    where = f"checkpoint {path}"
    try:
        generator = from_dict(GeneratorConfig, configs["generator"], where)
        face_values = configs.get("face_refiner")
        face_refiner = from_dict(FaceRefinerConfig, face_values, where) if face_values else None
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path} has an unreadable architecture: {error}",
                              hint="delete it and train again") from error
    width, height = payload["working_size"]
    return CheckpointInfo(
        path=Path(path),
        schema_version=int(payload["schema_version"]),
        tool_version=str(payload.get("tool_version", "")),
        created=str(payload.get("created", "")),
        preset=str(payload["preset"]),
        project_id=str(payload["project_id"]),
        working_size=(int(width), int(height)),
        generator_step=int(payload["generator_step"]),
        face_refiner_step=int(payload["face_refiner_step"]),
        generator=generator,
        face_refiner=face_refiner,
        configs=configs,
        trainable=all(key in payload for key in TRAINING_KEYS),
    )


def load_state(module: torch.nn.Module, payload: dict[str, Any], name: str, path: Path) -> None:
    """Strict load of `payload["models"][name]` into `module`."""
    state = payload["models"].get(name)
    if state is None:
        raise CheckpointError(f"{path} has no weights for the {name}",
                              hint="delete it and train again")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"the {name} weights in {path} do not fit its architecture: "
            f"{str(error).splitlines()[0]}",
            hint="the file is damaged: delete it and train again",
        ) from error


def load_generator(path: str | Path, device: str | torch.device = "cpu",
                   project_id: str | None = None) -> tuple[Generator, CheckpointInfo]:
    """The trained generator in eval mode, rebuilt from the checkpoint alone."""
    path = Path(path)
    payload = read_checkpoint(path, project_id)
    info = checkpoint_info(payload, path)
    generator = Generator(info.generator)
    load_state(generator, payload, "generator", path)
    return generator.to(device).eval(), info


def load_face_refiner(path: str | Path, device: str | torch.device = "cpu",
                      project_id: str | None = None) -> tuple[FaceRefiner | None, CheckpointInfo]:
    """The face refiner in eval mode, or None when the checkpoint was trained without one (or
    before its stage ran: `face_refiner_step == 0`)."""
    path = Path(path)
    payload = read_checkpoint(path, project_id)
    info = checkpoint_info(payload, path)
    if info.face_refiner is None or info.face_refiner_step == 0:
        return None, info
    refiner = FaceRefiner(info.face_refiner)
    load_state(refiner, payload, "face_refiner", path)
    return refiner.to(device).eval(), info


def export_inference(source: str | Path, destination: str | Path) -> CheckpointInfo:
    """A copy with only the generator and face refiner weights (no discriminators, optimizers or
    random states): what transfer needs, a fraction of the size. It cannot be resumed."""
    payload = read_checkpoint(source)
    slim = {key: value for key, value in payload.items()
            if key not in (*TRAINING_KEYS, "models")}
    slim["models"] = {name: state for name, state in payload["models"].items()
                      if name in ("generator", "face_refiner")}
    save_checkpoint(destination, slim)
    return checkpoint_info(slim, destination)


def weights_digest(models: dict[str, dict[str, torch.Tensor]]) -> str:
    """sha256 of state dicts by name: names, dtypes, shapes and the bytes of every tensor, so two
    sets of weights have the same digest only when they are equal bit for bit."""
    digest = hashlib.sha256()
    for name in sorted(models):
        for key in sorted(models[name]):
            tensor = models[name][key].detach().to("cpu")
            digest.update(f"{name}.{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
            digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --- random states -------------------------------------------------------------------------------

def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and CUDA generator states as plain values and tensors."""
    name, keys, position, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    return {
        "python": random.getstate(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`. CUDA states are restored when the same number of GPUs is
    present (a run resumed on another machine cannot replay the GPU's random stream)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state((
        numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32),
        numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"],
    ))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_states):
        torch.cuda.set_rng_state_all(cuda_states)
