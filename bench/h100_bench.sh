#!/usr/bin/env bash
# The commands behind docs/benchmarks.md' H100 section, as run on a lent
# 4 x H100 machine (torch, triton, nvcc in the image; no network).
#
#   bash bench/h100_bench.sh PHASE CARRY_DIR OUT_DIR     (from the repo root)
#
# CARRY_DIR (copied onto the machine by whoever runs this): fla-plain/ and
# fla-patched/ (fla 9714c595 without and with patches/), causal-conv1d/
# (v1.5.4 with its -gencode list cut to sm_90), whl/ (the stack's
# transformers==5.0.0rc0 + huggingface-hub 1.x + tokenizers 0.22), and for
# phase 2 prebuilt/ (what phase 1 wrote to OUT_DIR). Results go to OUT_DIR.
#
#   phase 1: build causal-conv1d (background) | fla autotune + GDN benchmarks,
#            plain vs patched alternating on one GPU, conv benchmark,
#            doctor --gpu checks, 1-GPU smoke; saves the build and Triton cache.
#   phase 2: smoke on 1, 2 and 4 GPUs with phase 1's Triton cache (copied back
#            into CARRY_DIR/prebuilt/); builds causal-conv1d again (timing
#            fla vs the torch fallback meanwhile) unless a .so built earlier
#            is in prebuilt/ too. What comes back lands in $OUT.
set -u -o pipefail
PHASE=${1:?usage: bench/h100_bench.sh PHASE(1|2) CARRY_DIR OUT_DIR}
C=$(realpath "${2:?usage: bench/h100_bench.sh PHASE(1|2) CARRY_DIR OUT_DIR}")
OUT=${3:?usage: bench/h100_bench.sh PHASE(1|2) CARRY_DIR OUT_DIR}
L=/tmp/logs
mkdir -p "$L" "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
t0=$SECONDS
el() { echo "[t=$((SECONDS - t0))s] $*"; }

python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$C"/whl/*.whl || exit 1
SITE=/tmp/site
PLAIN="$SITE:$C/fla-plain:/tmp/cc:$PWD"
PATCHED="$SITE:$C/fla-patched:/tmp/cc:$PWD"
{
  nvidia-smi; nvcc --version | tail -2
  python3 -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'
  python3 -m pip show transformers 2>/dev/null | head -2
  PYTHONPATH=$PLAIN python3 -c 'import transformers, fla; print("transformers (used)", transformers.__version__, "fla", fla.__version__)'
} > "$L/env.txt" 2>&1
cat "$L/env.txt" | grep -v "^|" | head -20

finish() {
  cp "$L"/*.jsonl "$L"/*.json "$OUT"/ 2>/dev/null
  tar czf "$OUT/logs.tgz" -C /tmp logs
  el done
}
trap finish EXIT

if [ "$PHASE" = 1 ]; then
  # causal-conv1d: sm_90 only, in place; put /tmp/cc on PYTHONPATH.
  cp -r "$C/causal-conv1d" /tmp/cc
  ( cd /tmp/cc && CAUSAL_CONV1D_FORCE_BUILD=TRUE MAX_JOBS=4 /usr/bin/time -v python3 setup.py build_ext --inplace \
      > "$L/cc_build.log" 2>&1; echo "cc build rc=$?" >> "$L/cc_build.log" ) &
  BUILD=$!
  # fla autotune in parallel (plain GPU0, patched GPU1), separate Triton caches.
  CUDA_VISIBLE_DEVICES=0 TRITON_CACHE_DIR=/tmp/tc-plain PYTHONPATH=$PLAIN \
    python3 bench/kernels.py gdn --T 4096 16384 --fallback --reps 20 --out "$L/warm.jsonl" > "$L/warm_plain.log" 2>&1 &
  W1=$!
  CUDA_VISIBLE_DEVICES=1 TRITON_CACHE_DIR=/tmp/tc-patched PYTHONPATH=$PATCHED \
    python3 bench/kernels.py gdn --T 4096 16384 --reps 20 --out "$L/warm.jsonl" > "$L/warm_patched.log" 2>&1 &
  W2=$!
  wait $W1 $W2; el "autotune done"; tail -3 "$L/warm_plain.log" "$L/warm_patched.log"
  # plain vs patched on the same GPU, alternating, twice each.
  for i in 1 2; do
    for v in plain patched; do
      P=$PLAIN; [ $v = patched ] && P=$PATCHED
      CUDA_VISIBLE_DEVICES=0 TRITON_CACHE_DIR=/tmp/tc-$v PYTHONPATH=$P \
        python3 bench/kernels.py gdn --T 4096 16384 --reps 200 --out "$L/gdn.jsonl" 2>&1 | tee -a "$L/gdn.log"
    done
  done
  el "gdn bench done"
  wait $BUILD; tail -2 "$L/cc_build.log"; el "build done"
  ls -la /tmp/cc/*.so
  CUDA_VISIBLE_DEVICES=0 PYTHONPATH=$PLAIN python3 bench/kernels.py conv --T 4096 16384 --reps 200 \
    --out "$L/conv.jsonl" 2>&1 | tee "$L/conv.log"
  for v in plain patched; do
    P=$PLAIN; [ $v = patched ] && P=$PATCHED
    CUDA_VISIBLE_DEVICES=1 TRITON_CACHE_DIR=/tmp/tc-$v PYTHONPATH=$P python3 -c '
import json, runner.checks.gpu_kernels as g, runner.checks.rows as r
c = g.run_gpu_checks(); print(r.render_table(c)); json.dump([x.to_json() for x in c], open("'"$L"'/doctor_gpu_'$v'.json", "w"), indent=1)' \
      2>&1 | tee "$L/doctor_$v.log"
  done
  el "checks done"
  (cd /tmp/cc && tar czf /tmp/cc_so.tgz causal_conv1d_cuda*.so) && split -b 15m /tmp/cc_so.tgz "$OUT/cc_so.tgz."
  if [ $((SECONDS - t0)) -lt 420 ]; then
    CUDA_VISIBLE_DEVICES=0 TRITON_CACHE_DIR=/tmp/tc-plain PYTHONPATH=$PLAIN timeout 150 \
      python3 -m runner.smoke --device cuda --nproc 1 --result-file "$L/smoke_1gpu.json" 2>&1 | tee "$L/smoke_1gpu.log"
  fi
  tar czf /tmp/tc.tgz -C /tmp tc-plain && split -b 15m /tmp/tc.tgz "$OUT/tc.tgz." && ls -la "$OUT"
else
  # Phase 1's .so did not come back (a tar glob bug), so build again, and meanwhile
  # time fla vs transformers' torch fallback (causal_conv1d kept off the path
  # while its package has no .so yet: transformers 5.0 would fail to import).
  mkdir -p /tmp/tc-plain && cat "$C"/prebuilt/tc.tgz.* | tar xzf - -C /tmp
  if ls "$C"/prebuilt/cc_so.tgz.* >/dev/null 2>&1; then
    # phase 2 again: the .so built by the previous phase-2 call came back
    mkdir -p /tmp/cc && cp -r "$C/causal-conv1d/causal_conv1d" /tmp/cc/ && cat "$C"/prebuilt/cc_so.tgz.* | tar xzf - -C /tmp/cc
  else
    cp -r "$C/causal-conv1d" /tmp/cc-src
    ( cd /tmp/cc-src && CAUSAL_CONV1D_FORCE_BUILD=TRUE MAX_JOBS=4 /usr/bin/time -v python3 setup.py build_ext --inplace \
        > "$L/cc_build.log" 2>&1; echo "cc build rc=$?" >> "$L/cc_build.log" ) &
    BUILD=$!
    CUDA_VISIBLE_DEVICES=1 TRITON_CACHE_DIR=/tmp/tc-plain PYTHONPATH=$SITE:$C/fla-plain:$PWD \
      python3 bench/kernels.py gdn --T 4096 --fallback --reps 100 --out "$L/fallback.jsonl" 2>&1 | tee "$L/fallback.log"
    wait $BUILD; tail -1 "$L/cc_build.log"; grep Elapsed "$L/cc_build.log"; el "build done"
    mkdir -p /tmp/cc && cp -r /tmp/cc-src/causal_conv1d /tmp/cc-src/causal_conv1d_cuda*.so /tmp/cc/
    (cd /tmp/cc && tar czf /tmp/cc_so.tgz causal_conv1d_cuda*.so) && split -b 15m /tmp/cc_so.tgz "$OUT/cc_so.tgz."
  fi
  export TRITON_CACHE_DIR=/tmp/tc-plain PYTHONPATH=$PLAIN
  for n in ${SMOKE_NPROCS:-1 2 4}; do
    [ $((SECONDS - t0)) -gt 520 ] && { el "no time left for smoke $n"; continue; }
    devs=$(seq -s, 0 $((n - 1)))
    CUDA_VISIBLE_DEVICES=$devs timeout 180 python3 -m runner.smoke --device cuda --nproc "$n" ${SMOKE_ARGS:-} \
      --result-file "$L/smoke_${n}gpu.json" 2>&1 | tee "$L/smoke_${n}gpu.log" | grep -v "^\[smoke\] step"
    el "smoke $n done"
  done
fi
