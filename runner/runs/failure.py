"""Why an attempt failed, read from the tail of its job log. Pure: text in, a reason out.

Each reason is a list of messages, the most specific reasons first (a CUDA
out-of-memory error inside a Ray actor reaches the driver as a RayTaskError,
so it must win over "Ray actor died"). Where each message comes from, and
how it was checked (docs/long-runs.md repeats this):

  cuda_oom    torch 2.9.1's libc10_cuda.so: "CUDA out of memory. Tried to allocate" (read from the
              binary's strings); torch.OutOfMemoryError is its Python class
  host_oom    Ray 2.53's raylet (_raylet.so strings): "Task was killed due to the node running low on
              memory.", "Memory on the node (IP: ", "Workers (tasks / actors) killed due to memory
              pressure (OOM)"
  nccl        torch 2.9.1's libtorch_cuda.so (ProcessGroupNCCL): "Watchdog caught collective operation
              timeout: ", "ProcessGroupNCCL's watchdog got stuck for ", "Some NCCL operations have
              failed or timed out", "NCCL communicator was aborted on rank ", "NCCL error"
  sglang      slime 3d7599aa's health monitor ("Health check failed for rollout engine"); sglang
              0.5.6.post1 ("Received sigquit from a child process", "scheduler is dead", "SIGQUIT
              received."); a 503 as httpx 0.28 words it ("Server error '503 Service Unavailable'",
              slime's http_utils) and as requests 2.32 does ("503 Server Error", sglang_engine.py)
  ray_died    Ray 2.53 (exceptions.py, _raylet.so): "The actor died unexpectedly before finishing
              this task.", "The actor is dead because", "ActorDiedError", "RayActorError",
              "NodeDiedError", "Task failed because the node it was running on is dead",
              "marked as dead"
  python      a Python traceback: "Traceback (most recent call last):" and its last "...Error: ..." line

What was seen in a real job log here: only the stand-in's (tests/standin_train.py: torch's OOM text
raised inside a Ray actor, a Python exception in an actor). The others are the upstream strings
above, never seen failing here (no GPUs, no NCCL, no sglang server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (reason, human label, messages). Order matters: first match wins.
REASONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("cuda_oom", "CUDA out of memory", ("CUDA out of memory", "torch.OutOfMemoryError",
                                        "torch.cuda.OutOfMemoryError")),
    ("host_oom", "host out of memory (killed)", ("Task was killed due to the node running low on memory",
                                                 "Memory on the node (IP: ",
                                                 "killed due to memory pressure (OOM)")),
    ("nccl", "NCCL timeout or watchdog", ("Watchdog caught collective operation timeout",
                                          "ProcessGroupNCCL's watchdog got stuck",
                                          "Some NCCL operations have failed or timed out",
                                          "NCCL communicator was aborted", "NCCL error")),
    ("sglang", "sglang engine died or answered 503", ("Health check failed for rollout engine",
                                                      "Received sigquit from a child process",
                                                      "scheduler is dead", "SIGQUIT received.",
                                                      "'503 Service Unavailable'", "503 Server Error")),
    ("ray_died", "a Ray actor or node died", ("The actor died unexpectedly", "The actor is dead because",
                                              "ActorDiedError", "RayActorError", "NodeDiedError",
                                              "Task failed because the node it was running on is dead",
                                              "marked as dead")),
)
LABELS = {reason: label for reason, label, _ in REASONS}
LABELS.update({"python": "Python exception", "unknown": "unknown", "hang": "hang (no progress)",
               "misalignment": "resume misalignment", "launch": "Ray did not come up"})

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_EXCEPTION = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception|Interrupt)): ?(.*)$")


@dataclass(frozen=True)
class Classified:
    reason: str  # one of LABELS
    line: str  # the log line that said so (ANSI codes and Ray's prefix kept out), or ""

    @property
    def label(self) -> str:
        return LABELS.get(self.reason, self.reason)


def _clean(line: str) -> str:
    text = _ANSI.sub("", line).strip()
    return re.sub(r"^\([^()]*pid=[^)]*\)\s*", "", text)[:400]


def classify(tail: str) -> Classified:
    """The reason the job log's tail gives for a failure (the last matching line of the most specific
    reason), a Python exception when only a traceback shows, else unknown."""
    lines = tail.splitlines()
    for reason, _label, messages in REASONS:
        for line in reversed(lines):
            if any(m in line for m in messages):
                return Classified(reason, _clean(line))
    if any("Traceback (most recent call last):" in line for line in lines):
        for line in reversed(lines):
            match = _EXCEPTION.search(_clean(line))
            if match:
                return Classified("python", _clean(line))
        return Classified("python", "")
    return Classified("unknown", "")


def read_tail(path, max_bytes: int = 256 << 10) -> str:  # noqa: ANN001
    """The last max_bytes of a file as text ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
