// Inputs of ConsisID nodes that are never wired, kept off the canvas.
// The ConsisID Sampler's `size` carries a wrong width/height/num_frames from the pack's size check
// (nodes/prompt_checks.py) to its validate_inputs, so ComfyUI reports one message naming exactly the wrong
// values. ComfyUI's V3 nodes receive no custom hidden inputs, so `size` is declared as an optional input;
// this removes its slot when a node is placed and when a saved workflow configures one.
import { app } from "../../../scripts/app.js";

const NEVER_WIRED = { ConsisIDSampler: ["size"] };

// Remove the unlinked slots named `names` from `node` (a linked one is left: removing it would drop the link).
function removeSlots(node, names) {
  const inputs = node.inputs ?? [];
  for (let i = inputs.length - 1; i >= 0; i--) {
    if (names.includes(inputs[i]?.name) && inputs[i].link == null) node.removeInput(i);
  }
}

function after(nodeType, method, names) {
  const original = nodeType.prototype[method];
  nodeType.prototype[method] = function () {
    const result = original?.apply(this, arguments);
    try {
      removeSlots(this, names);
    } catch (err) {
      console.warn("ConsisID hidden inputs:", err);
    }
    return result;
  };
}

// The pack's web folder can be served twice (pyproject `web` + WEB_DIRECTORY under two names): register once.
if (!globalThis.ConsisIDHiddenInputs) {
  globalThis.ConsisIDHiddenInputs = { NEVER_WIRED, removeSlots };
  app.registerExtension({
    name: "ConsisID.HiddenInputs",
    async beforeRegisterNodeDef(nodeType, nodeData) {
      const names = NEVER_WIRED[nodeData?.name];
      if (!names) return;
      after(nodeType, "onNodeCreated", names); // placed from the menu, or created while a workflow loads
      after(nodeType, "onConfigure", names); // a saved workflow's slots are set after creation
    },
  });
}
