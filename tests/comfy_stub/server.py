"""Stand-in for ComfyUI 0.8 `server.PromptServer`: routes, `send_sync`, on_prompt handlers and main.py's progress hook.

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
        self.on_prompt_handlers = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data, sid))

    def add_on_prompt_handler(self, handler):
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data):
        """Run every handler on the POST /prompt body (a failing handler is logged and skipped, as in ComfyUI)."""
        for handler in self.on_prompt_handlers:
            try:
                json_data = handler(json_data)
            except Exception:
                import logging

                logging.warning("[ERROR] An error occurred during the on_prompt_handler processing", exc_info=True)
        return json_data


def progress_hook(value, total, preview_image, prompt_id=None, node_id=None):
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()
    server = PromptServer.instance
    if server is None:
        return
    node_id = node_id if node_id is not None else server.last_node_id
    server.progress.append({"value": value, "max": total, "node": node_id, "preview": preview_image})
    server.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}, server.client_id)
