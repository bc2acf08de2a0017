"""HTTP calls to one ComfyUI server (standard library urllib): upload, queue, history, view, queue state."""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid

from .server_url import split_credentials


class ServerError(ConnectionError):
    """The server could not be reached or answered something unusable (a transport problem: retryable)."""


class PromptRejected(Exception):
    """ComfyUI refused the workflow at validation time (HTTP 400 from /prompt): the job itself is wrong."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details or {}


def describe_rejection(body: dict) -> str:
    """A one-line summary of a /prompt 400 answer: the error and each node error."""
    error = body.get("error", {})
    text = error.get("message", "workflow rejected") if isinstance(error, dict) else str(error)
    if isinstance(error, dict) and error.get("details"):
        text += f": {error['details']}"
    for node_id, node_error in (body.get("node_errors") or {}).items():
        kinds = "; ".join(
            f"{e.get('message', '')} {e.get('details', '')}".strip() for e in node_error.get("errors", [])
        )
        text += f" | node {node_id} ({node_error.get('class_type', '?')}): {kinds}"
    return text


class ComfyClient:
    """One ComfyUI server, addressed by its base URL (http://host:port)."""

    def __init__(self, base_url: str, timeout: float = 60.0):
        # user:password@ in the URL becomes a Basic Authorization header; base_url (used in messages) has none
        clean, self.auth_headers = split_credentials(base_url.rstrip("/"))
        self.base_url = clean.rstrip("/")
        self.timeout = timeout

    @property
    def ws_url(self) -> str:
        parts = urllib.parse.urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}/ws"

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.base_url + path, data=body, method=method,
                                         headers={**self.auth_headers, **(headers or {})})
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError) as exc:
            raise ServerError(f"{self.base_url}: {getattr(exc, 'reason', exc)}") from exc

    def _json(self, method: str, path: str, payload: dict | None = None) -> dict:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            with self._request(method, path, body, headers) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise ServerError(f"{self.base_url}{path}: HTTP {exc.code}") from exc
        except ValueError as exc:
            raise ServerError(f"{self.base_url}{path}: answer is not JSON") from exc

    def upload_image(self, path: str, name: str | None = None) -> str:
        """POST /upload/image (multipart, overwrite) and return the name ComfyUI stored it under."""
        name = name or os.path.basename(path)
        with open(path, "rb") as handle:
            content = handle.read()
        boundary = uuid.uuid4().hex
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        parts = [
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n".encode() + content + b"\r\n",
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n".encode(),
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n".encode(),
            f"--{boundary}--\r\n".encode(),
        ]
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        try:
            with self._request("POST", "/upload/image", b"".join(parts), headers) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ServerError(f"{self.base_url}/upload/image: HTTP {exc.code} for {path}") from exc
        stored = answer.get("name", name)
        subfolder = answer.get("subfolder") or ""
        return f"{subfolder}/{stored}" if subfolder else stored

    def queue_prompt(self, workflow: dict, client_id: str) -> str:
        """POST /prompt and return the prompt id; PromptRejected when ComfyUI refuses the workflow."""
        body = json.dumps({"prompt": workflow, "client_id": client_id}).encode()
        try:
            with self._request("POST", "/prompt", body, {"Content-Type": "application/json"}) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 400:
                try:
                    details = json.loads(exc.read() or b"{}")
                except ValueError:
                    details = {}
                raise PromptRejected(describe_rejection(details), details) from exc
            raise ServerError(f"{self.base_url}/prompt: HTTP {exc.code}") from exc
        if "prompt_id" not in answer:
            raise ServerError(f"{self.base_url}/prompt: no prompt_id in the answer")
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """GET /history/{id}: the entry once the prompt has finished, else None."""
        return self._json("GET", f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id)

    def queued_prompt_ids(self) -> set[str]:
        """Prompt ids running or waiting on the server (GET /queue)."""
        queue = self._json("GET", "/queue")
        ids = set()
        for key in ("queue_running", "queue_pending"):
            for item in queue.get(key, []):
                if isinstance(item, list) and len(item) > 1:
                    ids.add(item[1])
        return ids

    def download(self, filename: str, subfolder: str, folder_type: str, destination: str) -> int:
        """GET /view into `destination` (written to a temporary name first); returns the byte count."""
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
        partial = destination + ".part"
        try:
            with self._request("GET", f"/view?{query}") as response, open(partial, "wb") as handle:
                shutil.copyfileobj(response, handle, 1 << 20)
        except urllib.error.HTTPError as exc:
            raise ServerError(f"{self.base_url}/view {filename}: HTTP {exc.code}") from exc
        os.replace(partial, destination)
        return os.path.getsize(destination)
