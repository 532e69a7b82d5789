"""Judge a smoke worker's JSON and render it: pure Python, no torch."""

from __future__ import annotations

from runner.checks.rows import FAIL, OK, SKIP, WARN, Check, render_table

# bf16 outputs against a float64 reference: FACTS measured fla at 4e-3..8e-3;
# a wrong kernel (e.g. un-expanded heads, a broken build) is O(1).
PARITY_TOL = 2e-2
FIX_FLA = ("install flash-linear-attention at the pinned commit 9714c595 "
           "(nix develop, or pip install the flake's fla) in this environment")
FIX_CONV = "install causal-conv1d v1.5.4 built for this GPU (CAUSAL_CONV1D_FORCE_BUILD=TRUE)"


def judge(res: dict, torchrun_rc: int = 0) -> list[Check]:
    checks: list[Check] = []
    if "error" in res:
        return [Check("worker", FAIL, res["error"], "see the traceback above")]
    if "aborted" in res:
        fix = FIX_FLA if "fla" in res["aborted"] else FIX_CONV
        return [Check("fast-path kernels", FAIL, res["aborted"], fix)]
    cuda = res["device"] == "cuda"

    losses = res["losses"]
    finite = all(x == x and abs(x) != float("inf") for x in losses)
    first, final = losses[0], losses[-1]
    need = res["knobs"]["min_loss_drop"]
    drop = (first - final) / first if first else 0.0
    if not finite:
        checks.append(Check("loss falls", FAIL, f"non-finite loss: {losses}", "look for NaN in the kernels (doctor --gpu)"))
    elif drop < need:
        checks.append(Check("loss falls", FAIL,
                            f"first {first:.4f}, final {final:.4f}: dropped {drop * 100:.1f}% < {need * 100:.0f}%",
                            "check doctor --gpu kernel parity; try more --steps"))
    else:
        checks.append(Check("loss falls", OK, f"{first:.4f} -> {final:.4f} (-{drop * 100:.1f}%)"))

    calls = res.get("calls_min_over_ranks", {})
    if cuda:
        fla_ok = calls.get("fla_gdn_fwd", 0) > 0 and calls.get("fla_gdn_bwd", 0) > 0
        detail = (f"fla ChunkGatedDeltaRuleFunction fwd {calls.get('fla_gdn_fwd', 0)} / bwd "
                  f"{calls.get('fla_gdn_bwd', 0)} calls (min over ranks) of {calls.get('gdn_calls', 0)} GDN calls")
        checks.append(Check("fla chunk_gated_delta_rule used", OK if fla_ok else FAIL, detail,
                            "" if fla_ok else "transformers fell back to torch_chunk_gated_delta_rule: " + FIX_FLA))
        conv_ok = calls.get("causal_conv1d_fwd", 0) > 0 and calls.get("causal_conv1d_bwd", 0) > 0
        detail = (f"causal_conv1d CausalConv1dFn fwd {calls.get('causal_conv1d_fwd', 0)} / bwd "
                  f"{calls.get('causal_conv1d_bwd', 0)} calls (call site: {res.get('call_sites', {}).get('conv')})")
        checks.append(Check("causal-conv1d used", OK if conv_ok else FAIL, detail,
                            "" if conv_ok else "transformers used nn.Conv1d / F.conv1d: " + FIX_CONV))
    else:
        checks.append(Check("GDN implementation", OK,
                            f"transformers torch fallback on cpu ({calls.get('gdn_calls', 0)} calls, "
                            f"fla {calls.get('fla_gdn_fwd', 0)})"))

    parity = res.get("parity", {})
    heads = res.get("gdn_heads_at_call")
    for key, name, fix in (("gdn", "GDN output vs float64 reference", FIX_FLA),
                           ("conv", "conv output vs float64 reference", FIX_CONV)):
        p = parity.get(key)
        if p is None:
            status = FAIL if cuda else SKIP
            checks.append(Check(name, status, "no call captured", "" if not cuda else fix))
            continue
        ok = p["rel_err"] <= PARITY_TOL
        detail = f"rel err {p['rel_err']:.2e} (tol {PARITY_TOL:.0e}, {p['tokens']} tokens, {p['dtype']})"
        if key == "gdn" and heads:
            detail += f"; q/k heads {heads[0]}, v heads {heads[1]} at the call"
        hint = fix
        if key == "gdn" and heads and heads[0] != heads[1]:
            hint = ("this transformers passes un-expanded q/k heads; the installed fla must support that "
                    "(pin transformers==5.0.0rc0 with fla 9714c595)")
        checks.append(Check(name, OK if ok else FAIL, detail, "" if ok else hint))

    if cuda:
        mfu = res.get("mfu")
        mem = max(res.get("peak_mem_allocated_bytes", [0]))
        checks.append(Check("throughput", OK,
                            f"{res['tokens_per_s']:.0f} tokens/s ({res['tokens_per_s_per_gpu']:.0f}/GPU), "
                            f"step {res['step_time_s_median'] * 1e3:.1f} ms, peak mem {mem / 2**30:.1f} GiB"))
        if mfu is None:
            checks.append(Check("MFU", WARN, f"no bf16 peak known for {res.get('gpu_name')!r}",
                                "add it to runner/smoke/config.py PEAK_BF16"))
        else:
            floor = float(res.get("knobs", {}).get("min_mfu", 0.0) or 0.0)
            low = mfu < floor
            checks.append(Check("MFU", FAIL if low else OK,
                                f"{mfu * 100:.1f}% of {res['peak_bf16_flops'] / 1e12:.0f} TFLOP/s "
                                f"(dense bf16 datasheet peak of {res['gpu_name']}; floor {floor * 100:.0f}%)",
                                "below the floor measured on H100 (docs/benchmarks.md): a slow path, a busy GPU, "
                                "or other knobs; --min-mfu 0 disables" if low else ""))
    if torchrun_rc != 0:
        checks.append(Check("torchrun exit", FAIL, f"torchrun exited {torchrun_rc}", "see the log above"))
    return checks


def render(res: dict, checks: list[Check]) -> str:
    lines = []
    if "knobs" in res and "params" in res:
        k, p = res["knobs"], res["params"]
        where = f"{res['world_size']} x {res.get('gpu_name') or 'cpu'}"
        lines.append(f"smoke: Qwen3-Next {p['total'] / 1e6:.1f}M params ({p['matmul_active'] / 1e6:.1f}M active), "
                     f"{k['layers']} layers, {k['experts']} experts top-{k['top_k']}, "
                     f"{k['micro_batch']}x{k['seq_len']} tokens/rank, FSDP2"
                     f"{' with CPU offload' if res.get('fsdp_cpu_offload') else ''} on {where}")
        if "step_time_s_median" in res:
            rows = [
                ("tokens/s (all ranks)", f"{res['tokens_per_s']:.0f}"),
                ("tokens/s per rank", f"{res['tokens_per_s_per_gpu']:.0f}"),
                ("step time (median)", f"{res['step_time_s_median'] * 1e3:.1f} ms over {res['timed_steps']} steps"),
                ("loss first -> final", f"{res['losses'][0]:.4f} -> {res['losses'][-1]:.4f}"
                                        + (f" (floor of the task {res['loss_floor']:.2f})" if "loss_floor" in res
                                           else "")),
                ("loss per step", " ".join(f"{x:.2f}" for x in res["losses"])),
                ("model FLOPs/token", f"{res['flops_per_token']['total'] / 1e6:.1f} MFLOP (training: fwd+bwd)"),
            ]
            if res.get("peak_mem_allocated_bytes"):
                rows.append(("peak GPU memory", f"{max(res['peak_mem_allocated_bytes']) / 2**30:.2f} GiB allocated, "
                                                f"{max(res['peak_mem_reserved_bytes']) / 2**30:.2f} GiB reserved"))
            if res.get("host_rss_end_bytes"):
                grown = max(e - b for e, b in zip(res["host_rss_end_bytes"], res["host_rss_base_bytes"]))
                rows.append(("host memory per rank", f"{grown / 2**30:.2f} GiB held after training (resident, "
                                                     f"growth since start), peak resident "
                                                     f"{max(res['host_rss_peak_bytes']) / 2**30:.2f} GiB"))
            if res.get("mfu") is not None:
                rows.append(("MFU", f"{res['mfu'] * 100:.1f}%"))
            w = max(len(r[0]) for r in rows)
            lines += [f"  {a:<{w}}  {b}" for a, b in rows]
    lines.append(render_table(checks))
    return "\n".join(lines)
