"""`io` as node code sees it: the public names of _io."""

from comfy_api.latest._io import *  # noqa: F401,F403
