# Sourced by bench/smoke_offload.sh and bench/smoke_cache_timing.sh (not run on its own).
#
# install_smoke_site CARRY SITE: the stack's fast kernels and the pinned transformers into SITE,
# a fresh folder for PYTHONPATH, from a carry made by `bench/smoke_offload.sh prepare`:
# the causal-conv1d build in CARRY/prebuilt (a wheel, a wheel split into .part-* files, or
# cc_so.tgz.* parts of an earlier build's .so next to CARRY/causal-conv1d's Python files)
# and the wheels in CARRY/whl. fla stays a source tree (CARRY/fla-patched) on PYTHONPATH.
install_smoke_site() {
  local carry=$1 site=$2
  local prebuilt="$carry/prebuilt" wheels="$site.wheel-in"
  rm -rf "$site" "$wheels" && mkdir -p "$site" "$wheels"
  if ls "$prebuilt"/causal_conv1d-*.whl.part-* >/dev/null 2>&1; then
    local first
    first=$(ls "$prebuilt"/causal_conv1d-*.whl.part-* | head -1)
    cat "$prebuilt"/causal_conv1d-*.whl.part-* > "$wheels/$(basename "${first%.part-*}")"
  elif ls "$prebuilt"/causal_conv1d-*.whl >/dev/null 2>&1; then
    cp "$prebuilt"/causal_conv1d-*.whl "$wheels/"
  elif ls "$prebuilt"/cc_so.tgz.* >/dev/null 2>&1; then
    cp -r "$carry/causal-conv1d/causal_conv1d" "$site/" && cat "$prebuilt"/cc_so.tgz.* | tar xzf - -C "$site" || return 1
  else
    echo "no causal-conv1d build in $prebuilt: run bench/smoke_offload.sh build first and copy its OUT there"
    return 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$carry"/whl/*.whl \
    $(ls "$wheels"/*.whl 2>/dev/null) || return 1
}
