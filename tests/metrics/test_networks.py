"""IR-101 and Inception-v3: official key layouts, forward equal to the reference implementations."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from consisid_core.errors import ModelFilesError
from consisid_core.metrics.inception import INCEPTION_FILE, InceptionV3Features, load_inception
from consisid_core.metrics.ir101 import IRBackbone, load_ir_backbone

from metrics_weights import random_state, shapes_of

DATA = Path(__file__).parent / "data"


def _ir_reference() -> dict:
    # keys/shapes and an embedding made by ConsisID's own curricularface/model_irse.py IR_101 on seeded weights
    return json.loads((DATA / "ir101_reference.json").read_text())


def test_ir101_has_the_official_key_names_and_shapes():
    ref = {k: tuple(v) for k, v in _ir_reference()["keys"].items()}
    assert shapes_of(IRBackbone()) == ref


def test_ir101_forward_equals_the_reference_backbone(tmp_path, photos):
    ref = _ir_reference()
    path = tmp_path / "glint360k_curricular_face_r101_backbone.bin"
    torch.save(random_state({k: tuple(v) for k, v in ref["keys"].items()}, seed=ref["seed"]), path)
    model = load_ir_backbone(path)
    top, bottom, left, right = ref["crop"]
    img = cv2.resize(photos["astronaut"][top:bottom, left:right], (112, 112))
    x = torch.from_numpy(np.transpose(img, (2, 0, 1))).unsqueeze(0).float().div(255).sub(0.5).div(0.5)
    with torch.no_grad():
        got = model(x)[0].numpy()
    diff = np.abs(got - np.asarray(ref["embedding"])).max()
    print(f"IR-101 vs reference embedding: max |diff| = {diff:.2e}")
    assert diff < 1e-4


def test_ir101_refuses_a_different_file(tmp_path):
    state = {k: torch.zeros(()).expand(v) for k, v in shapes_of(IRBackbone()).items()}  # tiny files: views of one zero
    bad = dict(state)
    bad["output_layer.3.weight"] = torch.zeros(()).expand(512, 512 * 14 * 14)  # a 224-input backbone
    torch.save(bad, tmp_path / "wrong.bin")
    with pytest.raises(ModelFilesError, match="wrong shape"):
        load_ir_backbone(tmp_path / "wrong.bin")
    del state["body.48.res_layer.5.running_var"]
    torch.save(state, tmp_path / "short.bin")
    with pytest.raises(ModelFilesError, match="missing"):
        load_ir_backbone(tmp_path / "short.bin")
    (tmp_path / "cut.bin").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFilesError, match="Cannot read"):
        load_ir_backbone(tmp_path / "cut.bin")


def _inception_shapes() -> dict:
    # torchvision's inception_v3(aux_logits=True) state dict, recorded from torchvision 0.29
    return {k: tuple(v) for k, v in json.loads((DATA / "inception_keys.json").read_text()).items()}


def test_inception_loads_the_torchvision_file_layout(tmp_path):
    shapes = _inception_shapes()
    ours = shapes_of(InceptionV3Features())
    assert {k: v for k, v in shapes.items() if not k.startswith(("AuxLogits.", "fc."))} == ours
    state = random_state({k: v for k, v in shapes.items() if not k.endswith("num_batches_tracked")}, seed=4)
    torch.save(state, tmp_path / INCEPTION_FILE)
    model = load_inception(tmp_path / INCEPTION_FILE)
    assert torch.equal(model.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    assert torch.equal(model.Conv2d_1a_3x3.bn.running_var, state["Conv2d_1a_3x3.bn.running_var"])
    del state["Mixed_6e.branch7x7dbl_5.bn.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ModelFilesError, match="Mixed_6e.branch7x7dbl_5.bn.weight"):
        load_inception(tmp_path / "broken.pth")


@pytest.mark.reference
def test_inception_equals_torchvision_weights_default(tmp_path, photos, monkeypatch):
    """torchvision's `inception_v3(weights=DEFAULT)` (transform_input on, fc -> Identity) on the same file."""
    tv_models = pytest.importorskip("torchvision.models")
    from torchvision.models._api import WeightsEnum

    from consisid_core.metrics.fid import inception_input

    shapes = {k: v for k, v in _inception_shapes().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / INCEPTION_FILE
    torch.save(random_state(shapes, seed=9, gain=2.0), path)  # He-scaled: features follow the input
    # the official file's name, random contents: serve it where torchvision would download it from
    monkeypatch.setattr(WeightsEnum, "get_state_dict",
                        lambda self, *a, **k: torch.load(path, map_location="cpu", weights_only=True))
    reference = tv_models.inception_v3(weights=tv_models.Inception_V3_Weights.DEFAULT)
    assert reference.transform_input
    reference.fc = torch.nn.Identity()
    reference.eval()
    ours = load_inception(path)
    crops = [cv2.resize(photos["astronaut"][30:230, 130:330], (224, 224)), cv2.resize(photos["coffee"][:300, :300], (224, 224))]
    x = inception_input(crops)
    with torch.no_grad():
        a, b = reference(x), ours(x)
    diff = (a - b).abs().max().item()
    print(f"Inception-v3 ours vs torchvision weights=DEFAULT: max |diff| = {diff:.2e} (feature max {a.abs().max():.2f})")
    assert a.shape == (2, 2048) and diff < 1e-4 * a.abs().max().item()
    assert (a[0] - a[1]).abs().max() > 0.05 * a.abs().max()  # the two photos give different features


@pytest.mark.reference
def test_inception_input_equals_torchvision_transforms(photos):
    transforms = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    from consisid_core.metrics.fid import inception_input

    crop = cv2.resize(photos["astronaut"][30:230, 130:330], (224, 224))
    expected = transforms.ToTensor()(transforms.Resize((299, 299))(Image.fromarray(crop))).unsqueeze(0)
    diff = (inception_input([crop]) - expected).abs().max().item()
    print(f"Inception input vs torchvision Resize+ToTensor: max |diff| = {diff:.2e}")
    assert diff == 0.0
