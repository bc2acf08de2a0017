"""Which ONNX execution providers really create a session here (not only which are listed), as one JSON line.

Run as a file by install.py (`python consisid_core/onnx_probe.py`), so it needs nothing but onnxruntime (and
onnx to build the one-node test model).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # as consisid_core does: no telemetry lookups


def _identity_model() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 8)
    return model.SerializeToString()


def probe() -> dict:
    """{"version", "available", "working", "failed": {provider: why}, "note"?} or {"error": why}."""
    try:
        import onnxruntime as ort
    except Exception as exc:
        return {"error": f"onnxruntime does not import: {exc}"}
    result = {"version": ort.__version__, "available": ort.get_available_providers(), "working": [], "failed": {}}
    try:
        blob = _identity_model()
    except Exception as exc:
        result["note"] = f"onnx is missing, providers listed but not tried: {exc}"
        return result
    options = ort.SessionOptions()
    options.log_severity_level = 4
    for provider in result["available"]:
        try:
            session = ort.InferenceSession(blob, options, providers=[provider])
        except Exception as exc:
            result["failed"][provider] = str(exc).splitlines()[0][:200]
            continue
        if provider in session.get_providers():
            result["working"].append(provider)
        else:
            result["failed"][provider] = "falls back to " + ", ".join(session.get_providers())
    return result


if __name__ == "__main__":
    print(json.dumps(probe()))
    sys.exit(0)
