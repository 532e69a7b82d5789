#!/usr/bin/env bash
# smoke with and without FSDP2 CPU offload on one GPU, against the planner (issue 11 item 3),
# and smoke's loss curve (issue 12 item 3). Run from the repository root.
#
#   bash bench/smoke_offload.sh prepare CARRY FLA_SRC CAUSAL_CONV1D_SRC WHEELS   # here, with the sources
#   bash bench/smoke_offload.sh build   CARRY OUT     # GPU machine: causal-conv1d wheel for sm_90 (~3-4 min)
#   bash bench/smoke_offload.sh run     CARRY OUT     # GPU machine: the measurements (~5-7 min)
#
# CARRY (git-ignored, carried onto the GPU machine, which has no network):
#   fla-patched/     flash-linear-attention at 9714c595 with patches/ applied
#   causal-conv1d/   v1.5.4 (547dee6b) with setup.py's -gencode list cut to sm_90
#   whl/             the stack's transformers==5.0.0rc0 + huggingface-hub 1.x + tokenizers 0.22 wheels
#   prebuilt/        what `build` wrote to its OUT (the causal-conv1d wheel), copied back in before `run`
#                    (or cc_so.tgz.* parts of an earlier build's .so, as bench/h100_bench.sh returns it);
#                    optionally triton-cache.tgz.* from an earlier `run` (SAVE_TRITON_CACHE=1)
# `prepare` makes fla-patched/, causal-conv1d/ and whl/ from the two projects' sources (each a
# git dir or clone, or the pinned `git archive` tarball OWNER+REPO-REV.tar.gz as in
# $SLIME_UPSTREAM_SOURCES, tools/upstream_sources.py) and a folder holding the three wheels.
#
# `run` writes to OUT (at most 6 files): env.txt, smoke-runs.json (both results, the format
# docs/smoke-runs.json and `python -m runner.planner.smoke_compare` read), summary.md (planner vs
# measured GPU peak and host memory, tokens/s, the loss curves), logs.tgz, and with
# SAVE_TRITON_CACHE=1 the Triton cache as triton-cache.tgz.* (15 MiB parts) for the next call.
# NPROC=N (default 1) runs both on GPUs 0..N-1 (labels smoke-h200-Ngpu-mb2[-cpu-offload]); with
# N=3 the smoke model's 32 experts shard 11/11/10, so the offload run checks FSDP2's padded shards
# (runner/planner/pinned.py) on uneven ranks too.
set -u -o pipefail

STEP=${1:?usage: bench/smoke_offload.sh prepare|build|run CARRY ...}
CARRY=${2:?usage: bench/smoke_offload.sh $STEP CARRY ...}
mkdir -p "$CARRY"
CARRY=$(realpath "$CARRY")
t0=$SECONDS
el() { echo "[t=$((SECONDS - t0))s] $*"; }

case "$STEP" in
prepare)
  FLA_SRC=${3:?FLA_SRC: a git dir or clone of fla-org/flash-linear-attention, or its pinned git-archive tarball}
  CC_SRC=${4:?CAUSAL_CONV1D_SRC: a git dir or clone of Dao-AILab/causal-conv1d, or its pinned git-archive tarball}
  WHEELS=${5:?WHEELS: a folder with the transformers 5.0.0rc0, huggingface-hub and tokenizers wheels}
  REPO=$PWD
  WHEELS=$(realpath "$WHEELS")
  [ "$WHEELS" = "$CARRY/whl" ] && { echo "WHEELS is CARRY/whl itself: pass the folder the wheels come from"; exit 2; }
  rm -rf "$CARRY/fla-patched" "$CARRY/causal-conv1d" "$CARRY/whl"
  mkdir -p "$CARRY/fla-patched" "$CARRY/causal-conv1d" "$CARRY/whl"
  # extract SRC REV DEST: a `git archive` tarball (named for REV) or a git dir archived at REV.
  extract() {
    if [ -f "$1" ]; then
      case "$(basename "$1")" in *"-$2.tar.gz") ;; *) echo "$1 is not the archive of $2"; return 2 ;; esac
      tar -xzf "$1" -C "$3"
    else
      git -C "$1" archive "$2" | tar -x -C "$3"
    fi
  }
  extract "$FLA_SRC" 9714c595f4285052bb05115b656d2b7a533ca756 "$CARRY/fla-patched" || exit 1
  # patch -p1, not git apply: inside another work tree git apply can exit 0 without applying (FACTS).
  for p in "$REPO"/patches/*.patch; do (cd "$CARRY/fla-patched" && patch -p1 --forward -s < "$p") || exit 1; done
  extract "$CC_SRC" 547dee6bab0dbe5c5954d7b8f0c813a0d5ff97c8 "$CARRY/causal-conv1d" || exit 1
  # setup.py ignores TORCH_CUDA_ARCH_LIST and compiles nine targets for nvcc 13 (FACTS): keep sm_90.
  python3 - "$CARRY/causal-conv1d/setup.py" <<'EOF' || exit 1
import re, sys
path = sys.argv[1]
text = open(path).read()
block = re.compile(r'( *)if bare_metal_version <= Version\("12\.9"\):\n.*?arch=compute_121,code=sm_121"\)\n', re.S)
new, n = block.subn(lambda m: m.group(1) + 'cc_flag += ["-gencode", "arch=compute_90,code=sm_90"]\n', text)
assert n == 1, "the -gencode block of causal-conv1d v1.5.4 setup.py was not found"
open(path, "w").write(new)
EOF
  cp "$WHEELS"/transformers-5.0.0rc0-*.whl "$WHEELS"/huggingface_hub-*.whl "$WHEELS"/tokenizers-*.whl "$CARRY/whl/" || exit 1
  du -sh "$CARRY"
  ;;

build)
  OUT=${3:?OUT: where the wheel goes}
  mkdir -p "$OUT"
  rm -rf /tmp/cc-src /tmp/cc-wheel && cp -r "$CARRY/causal-conv1d" /tmp/cc-src
  {
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; nvcc --version | tail -1
    cd /tmp/cc-src && export CAUSAL_CONV1D_FORCE_BUILD=TRUE MAX_JOBS=${MAX_JOBS:-16}
    /usr/bin/time -v python3 -m pip wheel --no-deps --no-build-isolation --no-index -w /tmp/cc-wheel . \
      || /usr/bin/time -v python3 setup.py bdist_wheel -d /tmp/cc-wheel; echo "build rc=$?"
  } > "$OUT/build.log" 2>&1
  tail -1 "$OUT/build.log"; grep -E "Elapsed|Maximum resident" "$OUT/build.log"
  whl=$(ls /tmp/cc-wheel/causal_conv1d-*.whl 2>/dev/null | head -1)
  [ -n "$whl" ] || { echo "no wheel built: see $OUT/build.log"; exit 1; }
  # Files that come back are limited to 16 MiB each.
  if [ "$(stat -c %s "$whl")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15m "$whl" "$OUT/$(basename "$whl").part-"
  else
    cp "$whl" "$OUT/"
  fi
  ls -la "$OUT"; el "build done"
  ;;

run)
  OUT=${3:?OUT: where the results go}
  mkdir -p "$OUT"
  L=/tmp/smoke-offload-logs
  rm -rf "$L" && mkdir -p "$L"
  export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  SITE=/tmp/smoke-site
  source "$(dirname "$0")/lib/smoke-site.bash"
  install_smoke_site "$CARRY" "$SITE" || exit 1
  P="$CARRY/prebuilt"
  export PYTHONPATH="$SITE:$CARRY/fla-patched:$PWD"
  export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/smoke-triton-cache}
  mkdir -p "$TRITON_CACHE_DIR"
  if ls "$P"/triton-cache.tgz.* >/dev/null 2>&1; then cat "$P"/triton-cache.tgz.* | tar xzf - -C "$TRITON_CACHE_DIR"; fi
  {
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv; nproc; free -g | head -2
    python3 -c 'import torch, triton, transformers, fla, causal_conv1d; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__, "transformers", transformers.__version__, "fla", fla.__version__, fla.__file__, "causal_conv1d", causal_conv1d.__version__, causal_conv1d.__file__)'
    git rev-parse HEAD 2>/dev/null || true
  } > "$OUT/env.txt" 2>&1
  cat "$OUT/env.txt"

  smoke() {  # label, extra smoke args...: `runner smoke --json` result in $L/label.json, log in $L/label.log
    local label=$1; shift
    local s=$SECONDS
    timeout 420 python3 -m runner smoke --device cuda --nproc "$NPROC" --json "$@" > "$L/$label.json" 2> "$L/$label.log"
    echo "$label rc=$? wall=$((SECONDS - s))s: python3 -m runner smoke --device cuda --nproc $NPROC --json $*" \
      | tee -a "$L/commands.txt"
    grep -E "^\[smoke\] (built|step)|^smoke: " "$L/$label.log" | tail -6
    # Label and command travel inside the result (docs/smoke-runs.json keeps both).
    python3 -c 'import json, sys; p, label, cmd = sys.argv[1:]
try: r = json.load(open(p))
except ValueError: sys.exit(0)
r.update(label=label, command=cmd); json.dump(r, open(p, "w"), indent=1)' \
      "$L/$label.json" "$label" "python3 -m runner smoke --device cuda --nproc $NPROC $*"
  }
  NPROC=${NPROC:-1}
  GPUS=$(seq -s, 0 $((NPROC - 1)))
  NAME=smoke-h200-${NPROC}gpu-mb2
  CUDA_VISIBLE_DEVICES=$GPUS smoke "$NAME"
  el "plain done"
  CUDA_VISIBLE_DEVICES=$GPUS smoke "$NAME-cpu-offload" --fsdp-cpu-offload
  el "offload done"
  python3 bench/smoke_summary.py "$OUT" "$L/$NAME.json" "$L/$NAME-cpu-offload.json"
  tar czf "$OUT/logs.tgz" -C /tmp "$(basename "$L")"
  if [ "${SAVE_TRITON_CACHE:-0}" = 1 ]; then
    tar czf /tmp/triton-cache.tgz -C "$TRITON_CACHE_DIR" . && split -b 15m /tmp/triton-cache.tgz "$OUT/triton-cache.tgz."
  fi
  ls -la "$OUT"; el "run done"
  ;;

*)
  echo "unknown step $STEP: prepare, build or run"; exit 2
  ;;
esac
