"""Notifications of a run's events: a command of the user's, and a Slack-compatible webhook.

    --notify-cmd CMD          CMD runs through the shell with the event as one JSON object on stdin
    SLIME_NOTIFY_WEBHOOK=URL  the event is POSTed to URL as JSON: {"text": "...", **event}
                              (Slack's, Mattermost's and Discord's /slack incoming webhooks take "text")

An event: {"event": "start|failure|restart|hang|disk|misalignment|end", "run": ID,
"attempt": K, "message": ONE LINE, "time": ISO 8601, ...more fields}.

The webhook URL is a secret (whoever has it can post to the channel): it is
read from the environment only, redacted wherever the runner prints or records
(runner.secrets.KNOWN_SECRET_ENV), and unset in every process the runner
starts (runner.secrets.RUNNER_ONLY_SECRETS), so that neither Ray's runtime env
nor its workers ever hold it.

The caller is never hurt: send() only queues the event and returns; one
background thread delivers, each delivery bounded by `timeout_s` (a command
that outlives it is killed with its process group), and a failure is one line
on `log`. close() waits (bounded) for what is queued, e.g. before the
supervisor exits after "end".

Rate limit: at most one notification per event kind per `min_interval_s`
(default 5 minutes), so that a flapping disk or a restart loop does not flood a
channel. failure, misalignment and end are always sent. What is dropped is
counted, and the next notification of that kind says so ("dropped": {kind: N}
and "(N more since ...)" in its text).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Callable, Mapping

WEBHOOK_ENV = "SLIME_NOTIFY_WEBHOOK"
EVENTS = ("start", "failure", "restart", "hang", "disk", "misalignment", "end")
ALWAYS_SENT = frozenset({"failure", "misalignment", "end"})
DEFAULT_MIN_INTERVAL_S = 300.0
DEFAULT_TIMEOUT_S = 10.0


def webhook_env_name(environ: Mapping[str, str] = os.environ) -> str | None:
    """The variable's name when it is set (what run.json records: never the URL)."""
    return WEBHOOK_ENV if environ.get(WEBHOOK_ENV) else None


def event(kind: str, run: str, message: str, *, attempt: int = 1, **fields) -> dict:  # noqa: ANN003
    """An event dict with the time filled in."""
    return {"event": kind, "run": run, "attempt": attempt, "message": message,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}


def text_of(ev: dict) -> str:
    attempt = f" (attempt {ev.get('attempt')})" if (ev.get("attempt") or 1) != 1 else ""
    return f"slime run {ev.get('run')}{attempt}: {ev.get('event')}: {ev.get('message')}"


class Notifier:
    """Delivers events to --notify-cmd and the webhook, rate-limited, off the caller's thread.

    cmd: the --notify-cmd, or None. webhook_env: the NAME of the environment variable holding the
    webhook URL (WEBHOOK_ENV), or None for no webhook; it is read from `environ` here, once."""

    def __init__(self, cmd: str | None, webhook_env: str | None = WEBHOOK_ENV,
                 min_interval_s: float = DEFAULT_MIN_INTERVAL_S, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 environ: Mapping[str, str] | None = None, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        environ = os.environ if environ is None else environ
        self.cmd = cmd or None
        self._url = (environ.get(webhook_env) or None) if webhook_env else None
        self.min_interval_s = min_interval_s
        self.timeout_s = timeout_s
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._clock = clock
        self._last_sent: dict[str, float] = {}
        self._dropped: dict[str, int] = {}
        self._first_dropped: dict[str, str] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.cmd or self._url)

    def describe(self) -> str:
        """For the plan's notes; names the webhook's variable, never the URL."""
        if not self.enabled:
            return f"notifications: off (--notify-cmd CMD, or export {WEBHOOK_ENV}=URL)"
        ways = ([f"--notify-cmd {self.cmd}"] if self.cmd else []) + ([f"webhook from ${WEBHOOK_ENV}"]
                                                                     if self._url else [])
        return (f"notifications: {' and '.join(ways)}; at most one per kind every {self.min_interval_s:g} s "
                f"(failure, misalignment and end always)")

    def send(self, ev: dict) -> None:
        """Queue `ev` for delivery; returns at once and never raises."""
        try:
            if not self.enabled:
                return
            ev = self._admit(dict(ev))
            if ev is None:
                return
            self._queue.put(ev)
            self._ensure_thread()
        except Exception as exc:  # noqa: BLE001 - a notification must never break the run
            self._say(f"[runner] notification not sent: {type(exc).__name__}: {exc}")

    def close(self, timeout_s: float | None = None) -> bool:
        """Wait until what is queued was delivered (or failed); False when that took longer than
        timeout_s (default: two deliveries' worth)."""
        thread = self._thread
        if thread is None:
            return True
        self._queue.put(None)
        thread.join(2 * self.timeout_s + 1 if timeout_s is None else timeout_s)
        return not thread.is_alive()

    def _admit(self, ev: dict) -> dict | None:
        kind = str(ev.get("event"))
        now = self._clock()
        with self._lock:
            last = self._last_sent.get(kind)
            if kind not in ALWAYS_SENT and last is not None and now - last < self.min_interval_s:
                self._dropped[kind] = self._dropped.get(kind, 0) + 1
                self._first_dropped.setdefault(kind, str(ev.get("time", "")))
                return None
            self._last_sent[kind] = now
            dropped = self._dropped.pop(kind, 0)
            since = self._first_dropped.pop(kind, "")
        if dropped:
            ev["dropped"] = {kind: dropped}
            ev["message"] = f"{ev.get('message')} ({dropped} more {kind} since {since} not sent: rate limit)"
        return ev

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._deliver_all, name="runner-notify", daemon=True)
                self._thread.start()

    def _deliver_all(self) -> None:
        while True:
            ev = self._queue.get()
            if ev is None:
                return
            for deliver in (self._run_cmd, self._post):
                try:
                    deliver(ev)
                except Exception as exc:  # noqa: BLE001 - one line, never into the caller
                    self._say(f"[runner] notification ({ev.get('event')}) failed: {type(exc).__name__}: {exc}")

    def _run_cmd(self, ev: dict) -> None:
        if not self.cmd:
            return
        proc = subprocess.Popen(self.cmd, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(json.dumps(ev).encode() + b"\n", timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise TimeoutError(f"--notify-cmd ran past {self.timeout_s:g} s: killed") from None
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"--notify-cmd exited {proc.returncode}: {tail[0][:200]}")

    def _post(self, ev: dict) -> None:
        if not self._url:
            return
        body = json.dumps({"text": text_of(ev), **ev}).encode()
        request = urllib.request.Request(self._url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - the user's URL
                response.read(1024)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"the webhook (${WEBHOOK_ENV}) answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RuntimeError(f"the webhook (${WEBHOOK_ENV}) could not be reached: {reason}") from None

    def _say(self, line: str) -> None:
        if self._url:
            line = line.replace(self._url, "<redacted>")
        try:
            self._log(line)
        except Exception:  # noqa: BLE001
            pass
