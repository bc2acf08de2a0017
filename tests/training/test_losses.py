"""Each term of the objective against its formula, on fixed tensors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from consisid_core.demo.video_models import build_scheduler
from consisid_core.training import losses
from consisid_core.training.recipe import TrainConfig, draw, sample_generator


@pytest.fixture(scope="module")
def scheduler():
    return build_scheduler()


def _tensors(seed=0, batch=2, shape=(3, 4, 4, 6)):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, *shape, generator=gen) for _ in range(3)]


def test_objective_is_weighted_x0_mse(scheduler):
    out, noisy, clean = _tensors()
    t = torch.tensor([10, 700])
    ac = scheduler.alphas_cumprod[t].double().view(-1, 1, 1, 1, 1)
    out, noisy, clean = out.double(), noisy.double(), clean.double()
    # v-prediction -> x0: sqrt(ac) * x_t - sqrt(1 - ac) * v, weighted by 1 / (1 - ac)
    x0 = ac.sqrt() * noisy - (1 - ac).sqrt() * out
    expected = ((1 / (1 - ac)) * (x0 - clean) ** 2).float()
    got = losses.per_element_loss(scheduler, out, noisy, clean, t)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses.batch_loss(got, [None, None]), expected.mean(), rtol=1e-5, atol=1e-6)


def test_mask_loss_is_the_masked_mean(scheduler):
    loss = torch.rand(3, 4, 4, 6, generator=torch.Generator().manual_seed(1))
    mask = (torch.rand(3, 4, 6, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    full = mask[:, None].expand(3, 4, 4, 6)
    assert torch.allclose(losses.reduce_sample(loss, mask), (loss * full).sum() / full.sum())
    assert torch.allclose(losses.reduce_sample(loss, mask), loss[full.bool()].mean())  # = mean over face positions
    soft = torch.rand(3, 4, 6, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(losses.reduce_sample(loss, soft), (loss * soft[:, None]).sum() / (4 * soft.sum()))


def test_latent_mask_is_trilinear(scheduler):
    mask = torch.zeros(9, 32, 48)
    mask[2:, 4:20, 12:37] = 1.0  # edges between the two pixels trilinear blends, and frames without a face
    got = losses.latent_mask(mask, 3, 4, 6)
    expected = F.interpolate(mask[None, None], size=(3, 4, 6), mode="trilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(got, expected)
    assert got.shape == (3, 4, 6) and 0 < got.mean() < 1


def test_alpha_beta_zero_is_the_plain_objective(scheduler):
    config = TrainConfig(mask_prob=0.0, cross_face_prob=0.0, text_dropout=0.0)
    draws = [draw(config, sample_generator(0, 0, p), 1000) for p in range(200)]
    assert not any(d.use_mask or d.cross_face or d.drop_image or d.drop_text for d in draws)
    half = [draw(TrainConfig(), sample_generator(0, 0, p), 1000) for p in range(400)]
    assert 150 < sum(d.use_mask for d in half) < 250 and 150 < sum(d.cross_face for d in half) < 250
    # the image noise level is exp(N(-3, 0.5)) as the reference draws it
    logs = torch.tensor([d.image_sigma for d in half]).log()
    assert abs(logs.mean() + 3.0) < 0.1 and abs(logs.std() - 0.5) < 0.1


def test_draws_depend_only_on_seed_and_position():
    config = TrainConfig()
    a = [draw(config, sample_generator(5, 0, p), 1000) for p in range(6)]
    b = [draw(config, sample_generator(5, 0, p), 1000) for p in range(6)]
    c = [draw(config, sample_generator(6, 0, p), 1000) for p in range(6)]
    assert a == b and a != c
    assert dataclasses.asdict(a[0]).keys() >= {"timestep", "use_mask", "cross_face"}
