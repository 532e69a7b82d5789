"""What nvcc 12.8 preprocesses, as host-compiler commands.

The nvcc driver binary is not on PyPI (the nvidia-cuda-nvcc-cu12 wheel ships
ptxas, NVVM and the crt/ headers only), so a recorded nvcc compile is
replayed as the preprocessor runs nvcc itself starts, one for the host pass
and one per virtual architecture, shaped as `nvcc --dryrun` prints them for
CUDA 12.x (public transcripts, 12.1 to 12.9):

  gcc [-std] [-D__CUDA_ARCH__=<arch>] -D__CUDA_ARCH_LIST__=<archs> -D__NV_LEGACY_LAUNCH
      -E -x c++ [-DCUDA_DOUBLE_MATH_FUNCTIONS] -D__CUDACC__ -D__NVCC__ <INCLUDES of nvcc.profile>
      <the command's -I/-isystem/-D/-U/-include> -D__CUDACC_VER_MAJOR__=12 ... -include "cuda_runtime.h" -m64 FILE

INCLUDES: nixpkgs' cuda_nvcc rewrites nvcc.profile to its own include/ and
nvvm/include (pkgs/development/cuda-modules/packages/cuda_nvcc.nix). Options
that only change code generation are dropped; the two whose effect on
parsing is a macro keep it (--expt-relaxed-constexpr, --expt-extended-lambda).
This answers whether every header resolves and the preprocessor directives
hold, in each pass; it says nothing about device code (cicc, ptxas).
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERSION = {"MAJOR": 12, "MINOR": 8, "BUILD": 93}

# nvcc options that take a value (separate or after '='), which say nothing
# to the preprocessor.
VALUE_OPTIONS = {
    "-o", "--output-file", "-gencode", "--generate-code", "-arch", "--gpu-architecture", "-code", "--gpu-code",
    "--threads", "-t", "-ccbin", "--compiler-bindir", "--ptxas-options", "-Xptxas", "-Xcudafe", "-Xfatbin",
    "-Xnvlink", "--dependency-output", "-MF", "-MT", "-MQ", "--diag-suppress", "-maxrregcount", "--maxrregcount",
    "--default-stream", "-rdc", "--relocatable-device-code", "-x", "--x", "-L", "-l", "-Xlinker",
    "--linker-options", "--keep-dir", "--resource-usage-file", "--split-compile",
}
PASSTHROUGH_VALUE = {"-I": "-I", "--include-path": "-I", "-isystem": "-isystem", "--system-include": "-isystem",
                     "-D": "-D", "--define-macro": "-D", "-U": "-U", "--undefine-macro": "-U",
                     "-include": "-include", "--pre-include": "-include"}
MACRO_TOGGLES = {
    "--expt-relaxed-constexpr": "-D__CUDACC_RELAXED_CONSTEXPR__",
    "-expt-relaxed-constexpr": "-D__CUDACC_RELAXED_CONSTEXPR__",
    "--expt-extended-lambda": "-D__CUDACC_EXTENDED_LAMBDA__",
    "-expt-extended-lambda": "-D__CUDACC_EXTENDED_LAMBDA__",
    "--extended-lambda": "-D__CUDACC_EXTENDED_LAMBDA__",
    "-extended-lambda": "-D__CUDACC_EXTENDED_LAMBDA__",
}
SOURCE_SUFFIXES = (".cu", ".cpp", ".cc", ".cxx", ".c")


@dataclass
class NvccCompile:
    source: str
    output: str | None
    std: str | None
    preprocessor: list[str] = field(default_factory=list)  # -I/-isystem/-D/-U/-include, in order
    host_options: list[str] = field(default_factory=list)  # from --compiler-options / -Xcompiler
    toggles: list[str] = field(default_factory=list)
    # (virtual arch, codes) per -gencode, e.g. ("90", ["sm_90"]), ("100", ["compute_100"])
    targets: list[tuple[str, list[str]]] = field(default_factory=list)


def _split_value(arg: str, options) -> tuple[str, str] | None:
    for opt in options:
        if arg.startswith(opt + "=") and opt.startswith("-"):
            return opt, arg[len(opt) + 1:]
    return None


def _gencode(value: str) -> tuple[str, list[str]]:
    """'arch=compute_90,code=sm_90' or 'arch=compute_90,code=[sm_90,compute_90]'."""
    value = value.strip("'\"")
    arch, _, code = value.partition(",code=")
    virtual = arch.removeprefix("arch=").removeprefix("compute_")
    codes = [c.strip() for c in code.strip("[]\"'").split(",") if c.strip()]
    return virtual, codes


def parse(argv: list[str]) -> NvccCompile:
    source = output = std = None
    c = NvccCompile("", None, None)
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        joined = _split_value(arg, set(PASSTHROUGH_VALUE) | VALUE_OPTIONS | {"--compiler-options", "-Xcompiler"})
        if arg in ("-I", "-isystem", "-D", "-U", "-include") or arg in PASSTHROUGH_VALUE:
            c.preprocessor += [PASSTHROUGH_VALUE[arg], nxt]
            i += 2
            continue
        if joined and joined[0] in PASSTHROUGH_VALUE:
            c.preprocessor += [PASSTHROUGH_VALUE[joined[0]], joined[1]]
        elif arg.startswith(("-I", "-D", "-U")) and len(arg) > 2:
            c.preprocessor += [arg[:2], arg[2:]]
        elif arg in ("--compiler-options", "-Xcompiler") or (joined and joined[0] in ("--compiler-options", "-Xcompiler")):
            value = joined[1] if joined else nxt
            c.host_options += [o.strip("'\"") for o in value.split(",") if o.strip("'\"")]
            i += 1 if joined else 2
            continue
        elif arg in ("-gencode", "--generate-code") or (joined and joined[0] in ("-gencode", "--generate-code")):
            c.targets.append(_gencode(joined[1] if joined else nxt))
            i += 1 if joined else 2
            continue
        elif arg in ("-o", "--output-file") or (joined and joined[0] in ("-o", "--output-file")):
            output = joined[1] if joined else nxt
            i += 1 if joined else 2
            continue
        elif arg.startswith("-std=") or arg.startswith("--std="):
            std = "-std=" + arg.split("=", 1)[1]
        elif arg in ("-std", "--std"):
            std = "-std=" + nxt
            i += 2
            continue
        elif arg in MACRO_TOGGLES:
            c.toggles.append(MACRO_TOGGLES[arg])
        elif arg in VALUE_OPTIONS:
            i += 2
            continue
        elif not arg.startswith("-") and arg.endswith(SOURCE_SUFFIXES):
            source = arg
        i += 1
    c.source, c.output, c.std = source or "", output, std
    return c


def host_preprocessor_options(options: list[str]) -> list[str]:
    """Of the options forwarded to the host compiler, those that preprocessing reads."""
    out = []
    for opt in options:
        if opt.startswith(("-D", "-U", "-I", "-isystem", "-include", "-std=", "-f", "-m", "-O")):
            out.append(opt)
    return out


def passes(c: NvccCompile, nvcc_includes: list[str], compiler: str = "gcc") -> list[tuple[str, list[str]]]:
    """(pass name, argv) for the host pass and each device pass."""
    archs = [str(int(v) * 10) for v, _ in c.targets] or ["520"]
    arch_list = f"-D__CUDA_ARCH_LIST__={','.join(archs)}"
    common_tail = [
        *[f"-I{d}" for d in nvcc_includes],
        *c.preprocessor,
        f"-D__CUDACC_VER_MAJOR__={VERSION['MAJOR']}", f"-D__CUDACC_VER_MINOR__={VERSION['MINOR']}",
        f"-D__CUDACC_VER_BUILD__={VERSION['BUILD']}", f"-D__CUDA_API_VER_MAJOR__={VERSION['MAJOR']}",
        f"-D__CUDA_API_VER_MINOR__={VERSION['MINOR']}", "-D__NVCC_DIAG_PRAGMA_SUPPORT__=1",
        "-D__CUDACC_DEVICE_ATOMIC_BUILTINS__=1", "-include", "cuda_runtime.h", "-m64", c.source,
    ]
    std = [c.std] if c.std else []
    host = host_preprocessor_options(c.host_options)
    out = [("host", [compiler, *std, arch_list, "-D__NV_LEGACY_LAUNCH", "-E", "-x", "c++", "-D__CUDACC__",
                     "-D__NVCC__", *c.toggles, *host, *common_tail])]
    for arch in archs:
        out.append((f"device sm_{arch[:-1]}", [
            compiler, *std, f"-D__CUDA_ARCH__={arch}", arch_list, "-D__NV_LEGACY_LAUNCH", "-E", "-x", "c++",
            "-DCUDA_DOUBLE_MATH_FUNCTIONS", "-D__CUDACC__", "-D__NVCC__", *c.toggles, *host, *common_tail]))
    return out


def emitted(c: NvccCompile) -> tuple[list[str], list[str]]:
    """(SASS targets, PTX targets) the -gencode flags ask for."""
    sass, ptx = [], []
    for _, codes in c.targets:
        for code in codes:
            (sass if code.startswith("sm_") else ptx).append(code)
    return sass, ptx
