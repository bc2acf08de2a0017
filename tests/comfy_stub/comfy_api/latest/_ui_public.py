"""`ui` as node code sees it: the public names of _ui."""

from comfy_api.latest._ui import *  # noqa: F401,F403
