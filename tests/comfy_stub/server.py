"""Stand-in for ComfyUI 0.8 `server.PromptServer`: routes, `send_sync`, and the progress hook of main.py.

`progress_hook` does what main.py's `hijack_progress` hook does that matters to nodes: it raises
`InterruptProcessingException` when an interrupt was requested, and records progress (and previews).
"""

from __future__ import annotations

from typing import Any


class _Routes:
    """`routes.get(path)` / `routes.post(path)` decorators (aiohttp's RouteTableDef when available)."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], Any] = {}

    def _add(self, method: str, path: str):
        def register(handler):
            self.handlers[(method, path)] = handler
            return handler

        return register

    def get(self, path: str, **_kwargs):
        return self._add("GET", path)

    def post(self, path: str, **_kwargs):
        return self._add("POST", path)


def _route_table():
    try:
        from aiohttp import web

        return web.RouteTableDef()
    except ImportError:  # the harness never serves HTTP; a recorder is enough
        return _Routes()


class PromptServer:
    instance: "PromptServer | None" = None

    def __init__(self, loop) -> None:
        PromptServer.instance = self
        self.loop = loop
        self.routes = _route_table()
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages: list[tuple[str, Any, Any]] = []
        self.progress: list[dict] = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data, sid))


def progress_hook(value, total, preview_image, prompt_id=None, node_id=None):
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()
    server = PromptServer.instance
    if server is None:
        return
    node_id = node_id if node_id is not None else server.last_node_id
    server.progress.append({"value": value, "max": total, "node": node_id, "preview": preview_image})
    server.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}, server.client_id)
