#!/usr/bin/env bash
# Every GPU figure in one call of about 10 minutes; the tables go to $OUT (default gpu-run/).
#
#   bash benchmarks/gpu_run.sh DATA POSES            on the GPU machine, from the repository root
#   bash benchmarks/gpu_run.sh DATA POSES --smoke    the same, tiny and short, on any CPU
#
# DATA: the studio data (studio/target0, source0, gt/...); POSES: the clips' pose files, written
# on a machine with MediaPipe by
#   python benchmarks/quality.py --data DATA --targets 0 --sources 0 --target-seconds 60 \
#       --rows retrieval --eval-seconds 1 --save-poses POSES
# (the GPU machine has no MediaPipe). What it measures, in order (docs/benchmarks.md, "GPU"):
#   0. the dependency floor: this machine's numpy and torch against pyproject.toml's pins
#   1. generator forward frames/s at 256 and 512, batch 1/8/32, fp32/bf16/fp16/compile/CUDA
#      graphs, worst difference to fp32, and the FLOP floor (benchmarks/generator_speed.py)
#   2. training iterations/s and peak memory per preset, with and without AMP, and the data
#      path's share (benchmarks/train_speed.py)
#   3. a short real training (5 minutes, 256 preset) on studio/target0 scored on both protocols,
#      beside the retrieval floor (benchmarks/quality.py)
#   4. end-to-end transfer frames/s with poses cached, stage by stage (motionxfer bench)
set -uo pipefail
data=${1:?the studio data folder}
poses=${2:?the folder of pose files}
smoke=${3:-}
out=${OUT:-gpu-run}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
device=cuda sizes="256 512" batches="1 8 32" presets="tiny 256 512" minutes=5 preset=256
modes="fp32 bf16 fp16 compile cuda_graphs" seconds=2
if [ "$smoke" = "--smoke" ]; then
  device=cpu sizes=128 batches=1 presets=tiny minutes=0.2 preset=tiny modes="fp32 bf16" seconds=0.3
fi
run() {  # name, command...: its output to $out/name.md and the terminal; a failure is reported
  local name=$1; shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.md"
  local code=${PIPESTATUS[0]}
  [ "$code" = 0 ] || echo "!! $name failed with exit code $code" | tee -a "$out/failures.txt"
}

run dependencies python - <<'EOF'
import importlib.metadata as metadata, re, tomllib
try:
    from packaging.specifiers import SpecifierSet
except ImportError:  # then only the versions are listed
    SpecifierSet = None
pins = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("| package | pyproject.toml | this machine | covered |\n|---|---|---|---|")
for pin in pins:
    name = re.split(r"[<>=!~ ]", pin, maxsplit=1)[0]
    specifier = pin[len(name):].split("#")[0].strip()
    try:
        version = metadata.version(name)
        covered = ("?" if SpecifierSet is None else
                   "yes" if SpecifierSet(specifier).contains(version, prereleases=True) else "NO")
    except metadata.PackageNotFoundError:
        version, covered = "not installed", "-"
    print(f"| {name} | {specifier or 'any'} | {version} | {covered} |")
EOF
run generator python benchmarks/generator_speed.py --device "$device" --sizes $sizes \
  --batches $batches --modes $modes --seconds "$seconds"
run train_amp python benchmarks/train_speed.py --device "$device" --presets $presets \
  --batch-size 4 --steps 5 --amp
run train_fp32 python benchmarks/train_speed.py --device "$device" --presets $presets \
  --batch-size 4 --steps 5 --no-amp
run quality python benchmarks/quality.py --data "$data" --poses "$poses" --targets 0 \
  --sources 0 --target-seconds 60 --rows retrieval default --preset "$preset" \
  --minutes "$minutes" --batch-size 4 --eval-seconds 10 --lpips alex --device "$device" \
  --workdir "$out/quality" --json "$out/quality.json"
run bench python -m motionxfer bench "$out/quality/target0/default" --device "$device" \
  --seconds 5 --backend torch
echo "tables in $out/"
