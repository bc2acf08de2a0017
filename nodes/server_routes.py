"""ComfyUI server route `GET /consisid/models`: the model check as JSON, for the canvas badge and for scripts.

ComfyUI modules are imported inside `register_routes()` only, so importing this file never fails outside
ComfyUI; registering does nothing (and returns False) when the server is not there.
"""

from __future__ import annotations

import logging

ROUTE = "/consisid/models"

_log = logging.getLogger("ConsisID")
_registered = False


def models_payload(folder_paths) -> dict:
    """The JSON body of the route: model_status for ComfyUI's `consisid` and `insightface` folders."""
    from consisid_core import catalog, model_folder, model_status

    report = model_status.scan_models(
        [str(p) for p in model_folder.registered_roots(folder_paths, catalog.CONSISID_FOLDER_KEY)],
        [str(p) for p in model_folder.registered_roots(folder_paths, catalog.INSIGHTFACE_FOLDER_KEY)],
    )
    payload = report.to_dict()
    payload["hf_repo"] = catalog.HF_URL
    return payload


def _already_there(routes) -> bool:
    """True when some module (another copy of this pack) already added GET ROUTE to the table."""
    try:
        return any(getattr(r, "method", None) == "GET" and getattr(r, "path", None) == ROUTE for r in routes)
    except TypeError:  # a route table that cannot be listed: rely on the module flag
        return False


def register_routes() -> bool:
    """Add `GET /consisid/models` to ComfyUI's PromptServer; returns False when ComfyUI is not running."""
    global _registered
    if _registered:
        return True
    try:
        import folder_paths
        import server
        from aiohttp import web
    except Exception:  # not inside ComfyUI (tests, CLI): nothing to register
        return False
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None:
        return False
    if _already_there(instance.routes):  # a second copy of the pack: a duplicate GET would stop ComfyUI's startup
        _registered = True
        return True

    @instance.routes.get(ROUTE)
    async def consisid_models(request):  # noqa: ARG001 - aiohttp handler signature
        import asyncio

        try:
            payload = await asyncio.get_running_loop().run_in_executor(None, models_payload, folder_paths)
        except Exception as exc:  # a broken folder must not take the canvas down
            _log.exception("ConsisID: model check failed")
            return web.json_response({"error": f"model check failed: {exc}"}, status=500)
        return web.json_response(payload)

    _registered = True
    return True
