#!/usr/bin/env bash
# Kernel caches (issue 10 item 5): smoke's time from start to its first finished step on one GPU,
# with an empty kernel cache and then with the cache that first run left. Run from the repository root.
#
#   bash bench/smoke_cache_timing.sh CARRY OUT      # GPU machine (~5 min: one cold, one warm smoke)
#
# CARRY is bench/smoke_offload.sh's (its `prepare`, then `build` with the wheel copied to
# CARRY/prebuilt/): fla-patched/, whl/, prebuilt/ with the causal-conv1d wheel (or cc_so.tgz.*).
# Both runs use `python3 -m runner smoke --kernel-cache DIR` with the same, initially empty, DIR:
# the runner points TRITON_CACHE_DIR, FLASHINFER_WORKSPACE_BASE and TORCH_EXTENSIONS_DIR under it.
# OUT gets: cold.json, warm.json (smoke --json), cold.log, warm.log (each line stamped with the
# seconds since the command started), timing.md (the table for docs/benchmarks.md), env.txt.
set -u -o pipefail

CARRY=$(realpath "${1:?usage: bench/smoke_cache_timing.sh CARRY OUT}")
OUT=${2:?usage: bench/smoke_cache_timing.sh CARRY OUT}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
# Only --kernel-cache decides where kernels are cached in this measurement.
unset TRITON_CACHE_DIR FLASHINFER_WORKSPACE_BASE TORCH_EXTENSIONS_DIR

# The stack's fast kernels, as bench/smoke_offload.sh `run` installs them.
source "$(dirname "$0")/lib/smoke-site.bash"
SITE=/tmp/cache-timing-site
install_smoke_site "$CARRY" "$SITE" || exit 1
export PYTHONPATH="$SITE:$CARRY/fla-patched:$PWD"
{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv; nproc
  python3 -c 'import torch, triton, transformers, fla, causal_conv1d; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__, "transformers", transformers.__version__, "fla", fla.__version__)'
  git rev-parse HEAD 2>/dev/null || true
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

KC=/tmp/cache-timing-kernels
rm -rf "$KC"  # cold: nothing compiled yet
# Stamps each stderr line with the seconds since the command started.
STAMP='import sys, time
t0 = float(sys.argv[1])
for line in sys.stdin:
    sys.stdout.write(f"{time.time() - t0:8.1f} {line}")
    sys.stdout.flush()'
for label in cold warm; do
  start=$(date +%s.%N)
  timeout 900 python3 -m runner smoke --device cuda --nproc 1 --kernel-cache "$KC" --json \
    > "$OUT/$label.json" 2> >(python3 -c "$STAMP" "$start" > "$OUT/$label.log")
  echo "$label rc=$? wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")s"
  sleep 1  # the stamper's last lines
  du -sh "$KC"/* 2>/dev/null | sed "s/^/$label: cache after: /"
done

python3 - "$OUT" <<'EOF'
import json, re, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = ["| cache | start to step 1 finished (s) | smoke's build (s) | step 1 (s) | median step (s) | smoke |",
        "|---|---|---|---|---|---|"]
for label in ("cold", "warm"):
    log = (out / f"{label}.log").read_text()
    m = re.search(r"^\s*([\d.]+) \[smoke\] step 1/", log, re.M)
    try:
        r = json.loads((out / f"{label}.json").read_text())
    except ValueError:
        r = {}
    steps = r.get("step_times_s") or [None]
    verdict = "pass" if r.get("checks") and not any(c.get("status") == "fail" for c in r["checks"]) else "FAIL/none"
    rows.append(f"| {label} | {m.group(1) if m else '?'} | {r.get('build_s', float('nan')):.1f} | "
                f"{steps[0] if steps[0] is None else round(steps[0], 1)} | "
                f"{r.get('step_time_s_median', float('nan')):.2f} | {verdict} |")
(out / "timing.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
EOF
du -sh "$KC"/* > "$OUT/cache-sizes.txt" 2>&1; cat "$OUT/cache-sizes.txt"
