"""Checkpoints that describe themselves, written atomically and read strictly.

A checkpoint is one `torch.save` file holding only plain values (dicts, lists, strings, numbers,
tensors), so it loads with `torch.load(..., weights_only=True)` and unpickles no code:

    format, schema_version, tool_version, created
    preset                  the preset's name
    project_id              sha256 of the target video (a checkpoint belongs to one person)
    working_size            [width, height] of the frames the generator makes
    generator_step, face_refiner_step
    layout_step             steps of the layout generator's stage (absent: 0)
    configs                 generator, discriminator, temporal_discriminator, face_refiner (or
                            None when switched off), losses, train, layout_generator: each its
                            dataclass as a dict
    conditioning            how poses become the generator's input (motionxfer.conditioning;
                            absent before it was a choice: the RGB stick figure)
    architecture            the generator's name in motionxfer.networks.registry (absent:
                            "pix2pixhd")
    models                  state dicts by name ("generator", "discriminator", ...; with the
                            layout, "layout_generator" and "layout_discriminator"; with
                            train.ema, "generator" is the moving average that inference uses
                            and "generator_trained" the weights training goes on from)
    optimizers, schedulers, scaler      their state dicts (absent in an inference export)
    rng                     python, numpy, torch CPU and CUDA states, and the sampler's state
    episodic_memory         with replay (train.replay): the memory of each training frame's
                            error that the next batches are drawn from (else None or absent)

`Checkpoint` is the typed value a command reads once (`Checkpoint.load`) and passes down:
resuming takes everything from it, `build_generator()` rebuilds the generator with no other
input, and `inference_only()` keeps only what transfer needs (a much smaller file).
`read_checkpoint` / `save_checkpoint` are the file layer below it.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import pickle
import random
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer import __version__
from motionxfer.conditioning import Conditioning
from motionxfer.errors import BadInput, CheckpointError, DiskFull
from motionxfer.io.files import atomic_write
from motionxfer.networks.face_refiner import FaceRefiner, FaceRefinerConfig
from motionxfer.networks.generator import GeneratorConfig
from motionxfer.networks.layout_generator import LayoutGenerator
from motionxfer.networks.registry import (
    COMPOSITING_ARCHITECTURE,
    DEFAULT_ARCHITECTURE,
    MASK_GAIN_ARCHITECTURES,
    architecture,
    build_generator,
)
from motionxfer.presets import Preset, preset_configs, preset_from_configs
from motionxfer.training.config import TrainConfig

CHECKPOINT_FORMAT = "motionxfer-checkpoint"
CHECKPOINT_SCHEMA = 1
REQUIRED_KEYS = ("preset", "project_id", "working_size", "generator_step", "face_refiner_step",
                 "configs", "models")
TRAINING_KEYS = ("optimizers", "schedulers", "scaler", "rng")


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
    had_one = path.exists()
    try:
        with atomic_write(path) as handle:
            torch.save(payload, handle)
    except (OSError, DiskFull, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not _is_write_failure(error):
            raise
        if isinstance(error, OSError):
            reason = error.strerror or str(error)
        elif isinstance(error, DiskFull):
            reason = error.message.rpartition(": ")[2]
        else:  # torch's own writer: "PytorchStreamWriter failed writing file data/3: ..."
            reason = f"{str(error).splitlines()[0]} (is the disk full?)"
        kept = ("the previous checkpoint there is intact, continue from it with --resume"
                if had_one else "nothing was left half-written; run the command again")
        raise CheckpointError(f"could not write the checkpoint {path}: {reason}",
                              hint=f"free disk space in {path.parent}; {kept}") from error


def _is_write_failure(error: RuntimeError) -> bool:
    """Whether torch.save failed writing (its C++ writer turns a full disk into RuntimeError)."""
    text = str(error)
    return "PytorchStreamWriter" in text or "write failed" in text or "file write" in text


# torch's advice on a file its safe load refuses: load it unsafely, or allow its classes. Either
# would run whatever code the file's pickle names, so the message never repeats it.
_UNSAFE_ADVICE = re.compile(
    r"weights.only|safe_globals|still be loaded|two options|trust|arbitrary code|recommended steps"
    r"|check the documentation|please use", re.IGNORECASE)


def load_error_reason(error: BaseException) -> str:
    """The first informative sentence of torch.load's error, without torch's advice to load the
    file unsafely (`weights_only=False`, `add_safe_globals`) and without terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    for line in text.splitlines():
        line = re.sub(r"^\s*(\(\d+\)\s*)?(WeightsUnpickler error:\s*)?", "", line).strip()
        for sentence in re.split(r"(?<=\.)\s+", line):
            if sentence and not _UNSAFE_ADVICE.search(sentence):
                return sentence.rstrip(".")
    return ""


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
        reason = load_error_reason(error)
        raise CheckpointError(
            f"{path} is corrupt or not a motionxfer checkpoint ({type(error).__name__}"
            f"{': ' + reason if reason else ''})",
            hint="delete it and train again (motionxfer train-target PROJECT), or restore a backup",
        ) from error
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error}",
                              hint="check the file's permissions") from error
    if isinstance(payload, dict) and payload.get("format") == "motionxfer-animator":
        raise CheckpointError(  # motionxfer.animation.checkpoint.ANIMATOR_FORMAT
            f"{path} is an animator model (motionxfer train-animator), not a personal model",
            hint="use it with: motionxfer animate IMAGE DRIVING.mp4 --model FILE, or "
            "motionxfer transfer PROJECT DRIVING.mp4 --method animate --checkpoint FILE",
        )
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


@dataclass(frozen=True)
class TrainingState:
    """What resuming needs beyond the weights (absent in an inference export)."""

    optimizers: dict[str, Any]
    schedulers: dict[str, Any]
    scaler: dict[str, Any]
    rng: dict[str, Any]  # capture_rng_state() of rank 0
    # EpisodicMemory.state_dict() (plain tensors) when the run replays its worst frames
    # (TrainConfig.replay); None otherwise and in checkpoints from before replay
    episodic_memory: dict[str, torch.Tensor] | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read once, as typed values: what it is, how it was trained, its weights.

    `preset` holds every network's config and, in `preset.train`, the run's training settings;
    `conditioning` says how poses become the generator's input. Build it from a file with
    `Checkpoint.load`, write it with `save`; the networks come from `build_generator` and
    `build_face_refiner`.
    """

    preset: Preset
    project_id: str  # sha256 of the target video: a checkpoint belongs to one person
    working_size: tuple[int, int]  # (width, height) of the frames the generator makes
    generator_step: int
    face_refiner_step: int
    models: dict[str, dict[str, torch.Tensor]]  # state dicts by network name
    conditioning: Conditioning = Conditioning()
    architecture: str = DEFAULT_ARCHITECTURE
    with_face_refiner: bool = True  # False: trained with the face refiner switched off
    training: TrainingState | None = None
    layout_step: int = 0  # steps of the layout generator's stage (`conditioning.layout`)
    path: Path | None = None  # where it was read from or last saved
    schema_version: int = CHECKPOINT_SCHEMA
    tool_version: str = __version__
    created: str = ""

    # --- what it says about itself -------------------------------------------------------
    @property
    def generator(self) -> GeneratorConfig:
        return self.preset.generator

    @property
    def face_refiner(self) -> FaceRefinerConfig | None:
        return self.preset.face_refiner if self.with_face_refiner else None

    @property
    def train(self) -> TrainConfig:
        return self.preset.train

    @property
    def trainable(self) -> bool:
        return self.training is not None

    def summary(self) -> dict[str, Any]:
        return {"preset": self.preset.name, "working_size": list(self.working_size),
                "generator_step": self.generator_step,
                "face_refiner_step": self.face_refiner_step,
                "conditioning": self.conditioning.kind}

    # --- files ---------------------------------------------------------------------------
    @staticmethod
    def load(path: str | Path, project_id: str | None = None) -> Checkpoint:
        """Read and validate `path` (`project_id` given: it must be that project's)."""
        return Checkpoint.from_payload(read_checkpoint(path, project_id), path)

    @staticmethod
    def from_payload(payload: dict[str, Any], path: str | Path) -> Checkpoint:
        where = f"checkpoint {path}"
        configs = payload["configs"]
        if not isinstance(configs, dict) or not isinstance(payload["models"], dict):
            raise CheckpointError(f"{path} has an unreadable configuration",
                                  hint="delete it and train again")
        width, height = payload["working_size"]
        training = None
        if all(key in payload for key in TRAINING_KEYS):
            training = TrainingState(*(payload[key] for key in TRAINING_KEYS),
                                     episodic_memory=payload.get("episodic_memory"))
        try:
            architecture(str(payload.get("architecture", DEFAULT_ARCHITECTURE)))
        except BadInput as error:
            raise CheckpointError(f"{path}: {error.message}", hint=error.hint) from error
        return Checkpoint(
            preset=preset_from_configs(str(payload["preset"]), int(height), configs, where),
            project_id=str(payload["project_id"]),
            working_size=(int(width), int(height)),
            generator_step=int(payload["generator_step"]),
            face_refiner_step=int(payload["face_refiner_step"]),
            models=payload["models"],
            conditioning=Conditioning.from_dict(payload.get("conditioning"), where),
            architecture=str(payload.get("architecture", DEFAULT_ARCHITECTURE)),
            with_face_refiner=bool(configs.get("face_refiner")),
            training=training,
            layout_step=int(payload.get("layout_step", 0)),
            path=Path(path),
            schema_version=int(payload["schema_version"]),
            tool_version=str(payload.get("tool_version", "")),
            created=str(payload.get("created", "")),
        )

    def payload(self) -> dict[str, Any]:
        """Plain values and tensors only, as `torch.load(weights_only=True)` reads them."""
        configs = preset_configs(self.preset)
        if not self.with_face_refiner:
            configs["face_refiner"] = None
        values: dict[str, Any] = new_payload(
            preset=self.preset.name, project_id=self.project_id,
            working_size=[int(self.working_size[0]), int(self.working_size[1])],
            generator_step=self.generator_step, face_refiner_step=self.face_refiner_step,
            configs=configs, conditioning=self.conditioning.to_dict(),
            architecture=self.architecture, models=self.models, layout_step=self.layout_step,
        )
        if self.training is not None:
            values.update(dataclasses.asdict(self.training))
        return values

    def save(self, path: str | Path) -> Checkpoint:
        """Write atomically; returns the checkpoint as saved there."""
        save_checkpoint(path, self.payload())
        return dataclasses.replace(self, path=Path(path))

    def inference_only(self) -> Checkpoint:
        """Only the generator, face refiner and layout generator weights (no discriminators,
        optimizers or random states): what transfer needs, a fraction of the size. It cannot be
        resumed."""
        kept = {name: state for name, state in self.models.items()
                if name in ("generator", "face_refiner", "background", "layout_generator")}
        return dataclasses.replace(self, models=kept, training=None)

    # --- networks ------------------------------------------------------------------------
    def load_weights(self, module: torch.nn.Module, name: str) -> None:
        """Strict load of the weights of network `name` into `module`."""
        state = self.models.get(name)
        if state is None:
            raise CheckpointError(f"{self.path} has no weights for the {name}",
                                  hint="delete it and train again")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise CheckpointError(
                f"the {name} weights in {self.path} do not fit its architecture: "
                f"{str(error).splitlines()[0]}",
                hint="the file is damaged: delete it and train again",
            ) from error

    def build_generator(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The trained generator in eval mode."""
        generator = build_generator(self.generator, self.architecture)
        self.load_weights(generator, "generator")
        plate = self.models.get("background", {}).get("plate")
        if self.architecture == COMPOSITING_ARCHITECTURE and plate is None:
            raise CheckpointError(f"{self.path} composites over a background plate but "
                                  "holds none", hint="delete it and train again")
        if plate is not None:
            generator.set_plate(plate)
        if self.architecture in MASK_GAIN_ARCHITECTURES:
            generator.mask_gain = self.preset.train.mask_gain  # the composite's, at inference
        return generator.to(device).eval()

    def build_layout_generator(self, device: str | torch.device = "cpu",
                               ) -> LayoutGenerator | None:
        """The trained layout generator in eval mode, or None when the model takes no layout."""
        if not self.conditioning.layout:
            return None
        if self.preset.layout_generator.pose_channels != self.conditioning.pose_channels:
            raise CheckpointError(
                f"{self.path}: the layout generator reads {self.preset.layout_generator.pose_channels}"
                f" pose channels, the conditioning has {self.conditioning.pose_channels}",
                hint="the file is damaged: delete it and train again")
        network = LayoutGenerator(self.preset.layout_generator)
        self.load_weights(network, "layout_generator")
        return network.to(device).eval()

    def build_face_refiner(self, device: str | torch.device = "cpu") -> FaceRefiner | None:
        """The face refiner in eval mode, or None when the checkpoint was trained without one
        (or before its stage ran: `face_refiner_step == 0`)."""
        if self.face_refiner is None or self.face_refiner_step == 0:
            return None
        refiner = FaceRefiner(self.face_refiner)
        self.load_weights(refiner, "face_refiner")
        return refiner.to(device).eval()


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
