"""benchmarks/quality_seeds.py: means over seeds, and which differences lie outside them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "quality_seeds.py"


def entry(row: str, lpips: float, tcm: float) -> dict[str, object]:
    return {"target": 0, "clip": "self", "row": row, "lpips": lpips, "tcm": tcm}


def comparison(tmp_path: Path, runs: list[list[dict[str, object]]]) -> dict[str, list[str]]:
    """The second table's cells for each method, from quality.py JSON files."""
    paths = []
    for index, rows in enumerate(runs):
        paths.append(tmp_path / f"run{index}.json")
        paths[-1].write_text(json.dumps(rows))
    out = subprocess.run([sys.executable, str(SCRIPT), *map(str, paths)], check=True,
                         capture_output=True, text=True).stdout
    table = out.split("Against composite")[1]
    return {cells[3]: cells[4:] for line in table.splitlines() if line.startswith("| target0")
            for cells in [[c.strip() for c in line.split("|")]]}


def test_differences_outside_both_ranges_are_marked(tmp_path: Path) -> None:
    cells = comparison(tmp_path, [
        [entry("composite (**default**)", 0.060, 0.60), entry("sequence", 0.050, 0.62)],
        [entry("composite seed 1", 0.058, 0.64), entry("sequence seed 1", 0.052, 0.61)],
    ])
    lpips, tcm = cells["sequence"][0], cells["sequence"][3]
    assert lpips == "-0.008 + yes"  # 0.050/0.052 both below 0.058/0.060: lower is better
    assert tcm == "-0.005"  # the ranges overlap, and lower TCM is worse


def test_one_seed_is_never_called_apart(tmp_path: Path) -> None:
    cells = comparison(tmp_path, [
        [entry("composite", 0.060, 0.60), entry("composite seed 1", 0.061, 0.60),
         entry("gw", 0.040, 0.70)],
    ])
    assert cells["gw"][0] == "-0.020 +"
    assert cells["gw"][3] == "+0.100 +"


def test_a_variant_named_after_the_seed_joins_its_method(tmp_path: Path) -> None:
    # quality.py labels the trained weights of `--rows ema --seed 1` 'ema seed 1 trained weights'
    cells = comparison(tmp_path, [
        [entry("composite", 0.060, 0.60), entry("ema trained weights", 0.050, 0.62)],
        [entry("composite seed 1", 0.058, 0.64), entry("ema seed 1 trained weights", 0.052, 0.61)],
    ])
    assert set(cells) == {"ema trained weights"}
    assert cells["ema trained weights"][0] == "-0.008 + yes"


def test_other_step_counts_are_other_methods(tmp_path: Path) -> None:
    longer = {**entry("composite", 0.050, 0.62), "steps": 3200}
    paths = [tmp_path / "run.json"]
    paths[0].write_text(json.dumps([{**entry("composite", 0.060, 0.60), "steps": 2000},
                                    {**entry("composite seed 1", 0.058, 0.64), "steps": 2000},
                                    longer]))
    ambiguous = subprocess.run([sys.executable, str(SCRIPT), str(paths[0])],
                               capture_output=True, text=True)
    assert ambiguous.returncode == 2 and "--baseline 'composite 2000 steps'" in ambiguous.stderr
    out = subprocess.run([sys.executable, str(SCRIPT), str(paths[0]),
                          "--baseline", "composite 2000 steps"], check=True,
                         capture_output=True, text=True).stdout
    rows = [[c.strip() for c in line.split("|")] for line in out.splitlines()
            if line.startswith("| target0")]
    assert ["composite 2000 steps", "0,1"] == rows[0][3:5]  # two seeds of the 2000-step row
    assert rows[1][3:6] == ["composite 3200 steps", "0", "0.050"]  # not a third seed
    assert rows[-1][3:5] == ["composite 3200 steps", "-0.009 +"]
