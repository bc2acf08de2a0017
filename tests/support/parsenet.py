"""A random `parsing_parsenet.pth` so facexlib's FaceRestoreHelper loads offline (reference environment only).

Moved to consisid_core/demo/parsenet.py (bench/bench_face.py needs it too); re-exported for the tests."""

from consisid_core.demo.parsenet import PARSENET_FILE, parsenet_state, write_parsenet  # noqa: F401
