"""A stand-in for the Hugging Face Hub's metadata API (the hub cannot be reached here).

Serves what `HfApi.repo_info(..., files_metadata=True)` reads:
GET /api/{models|datasets}/OWNER/NAME[/revision/REV] -> {"id", "sha", "siblings": [{"rfilename", "size"}]}.
Any other path is a 404 and is recorded, so a test can assert that nothing was downloaded.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubStandIn:
    def __init__(self, repos: dict[tuple[str, str], dict[str, int]]) -> None:
        """repos: (repo_type "model"/"dataset", "owner/name") -> {file name: size in bytes}."""
        self.repos = repos
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                parts = path.strip("/").split("/")
                if len(parts) >= 4 and parts[0] == "api" and parts[1] in ("models", "datasets"):
                    kind = "model" if parts[1] == "models" else "dataset"
                    files = owner.repos.get((kind, f"{parts[2]}/{parts[3]}"))
                    if files is not None:
                        body = json.dumps({"id": f"{parts[2]}/{parts[3]}", "sha": "0" * 40, "siblings": [
                            {"rfilename": name, "size": size} for name, size in files.items()]}).encode()
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "HubStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
