"""ComfyUI nodes of the ConsisID pack: thin adapters over `consisid_core`."""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
