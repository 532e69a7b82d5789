"""What another local user gets from a run: run as that user (tests/test_security.py starts it under
`setpriv --reuid=nobody`), standard library only, one JSON object in on stdin, one out on stdout.

In:  {"paths": [file or directory, ...], "ports": [[host, port], ...], "secrets": [value, ...],
      "submit": {"host": ADDRESS (default 127.0.0.1), "port": N, "marker": PATH}}
Out: {"read": [files read], "denied": [paths refused], "leaks": [where a secret was seen],
      "http": {"host:port": [status or error of GET /api/jobs/, of GET /]}, "submit": status or error}
(a 200 says what it served: "200 metrics" (Prometheus text), "200 html", "200 other").

The secrets come on stdin, never argv, and are never printed: only where they were found.
"""

import json
import os
import sys
import urllib.error
import urllib.request


def _forms(value: str) -> list[str]:
    return [f for f in {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]} if f]


def _leaks(data: bytes, secrets: list[str]) -> bool:
    text = data.decode(errors="replace")
    return any(form in text for value in secrets for form in _forms(value))


def walk(paths: list[str], secrets: list[str], out: dict) -> None:
    for top in paths:
        if os.path.isdir(top) or not os.path.exists(top):
            try:
                entries = os.walk(top, onerror=lambda exc: out["denied"].append(exc.filename))
                files = [os.path.join(d, f) for d, _, names in entries for f in names]
            except OSError as exc:
                out["denied"].append(f"{top}: {exc}")
                continue
        else:
            files = [top]
        for path in files:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                out["denied"].append(path)
                continue
            out["read"].append(path)
            if _leaks(data, secrets):
                out["leaks"].append(path)


def _http(url: str, secrets: list[str], out: dict, data: bytes | None = None) -> str:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            body, status = resp.read(), str(resp.status)
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), str(exc.code)
    except Exception as exc:  # noqa: BLE001 - not HTTP, refused, reset: all "no"
        return type(exc).__name__
    if _leaks(body, secrets):
        out["leaks"].append(url)
    if status == "200":  # what answered without a token
        head = body[:512].lstrip().lower()
        kind = ("metrics" if head.startswith((b"# help", b"# type")) else
                "html" if head.startswith((b"<!doctype html", b"<html")) else "other")
        return f"200 {kind}"
    return status


def main() -> int:
    request = json.load(sys.stdin)
    secrets = [s for s in request.get("secrets", []) if s]
    out: dict = {"uid": os.getuid(), "read": [], "denied": [], "leaks": [], "http": {}, "submit": None}
    walk(request.get("paths", []), secrets, out)
    for host, port in request.get("ports", []):
        base = f"http://{host}:{port}"
        out["http"][f"{host}:{port}"] = [_http(f"{base}/api/jobs/", secrets, out), _http(f"{base}/", secrets, out)]
    submit = request.get("submit")
    if submit:
        job = {"entrypoint": f"touch {submit['marker']}"}
        host = submit.get("host", "127.0.0.1")
        out["submit"] = _http(f"http://{host}:{submit['port']}/api/jobs/", secrets, out,
                              data=json.dumps(job).encode())
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
