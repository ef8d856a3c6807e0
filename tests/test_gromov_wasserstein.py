"""Entropic Gromov-Wasserstein against POT (a test-only dependency), gradients against finite
differences, and the structure losses on synthetic features whose answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from motionxfer.errors import BadInput
from motionxfer.training.gromov_wasserstein import (
    appearance_gw_loss,
    entropic_gromov_wasserstein,
    gromov_wasserstein_discrepancy,
    normalized_distances,
    pose_appearance_gw_loss,
)

ot = pytest.importorskip("ot")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_problem(seed: int, size_a: int, size_b: int):
    """Distance matrices (max 1) of random 2-D and 3-D point clouds, and random weights."""
    rng = np.random.default_rng(seed)
    points_a, points_b = rng.normal(size=(size_a, 2)), rng.normal(size=(size_b, 3))
    cost_a = ot.dist(points_a, points_a, metric="euclidean")
    cost_b = ot.dist(points_b, points_b, metric="euclidean")
    weights_a = rng.dirichlet(np.full(size_a, 5.0))
    weights_b = rng.dirichlet(np.full(size_b, 5.0))
    return cost_a / cost_a.max(), cost_b / cost_b.max(), weights_a, weights_b


def as_tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.tensor(array, dtype=torch.float64) for array in arrays]


PROBLEMS = [(0, 5, 7), (1, 8, 8), (2, 12, 9), (3, 10, 12), (4, 6, 11)]


@pytest.mark.parametrize("epsilon", [0.02, 0.1])
@pytest.mark.parametrize("seed, size_a, size_b", PROBLEMS)
def test_plan_and_discrepancy_match_pot(seed, size_a, size_b, epsilon):
    cost_a, cost_b, weights_a, weights_b = random_problem(seed, size_a, size_b)
    pot_plan, log = ot.gromov.entropic_gromov_wasserstein(
        cost_a, cost_b, weights_a, weights_b, epsilon=epsilon, log=True)
    pot_discrepancy = ot.gromov.entropic_gromov_wasserstein2(
        cost_a, cost_b, weights_a, weights_b, epsilon=epsilon)
    plan, discrepancy = entropic_gromov_wasserstein(
        *as_tensors(cost_a, cost_b, weights_a, weights_b), epsilon=epsilon, iterations=1000,
        sinkhorn_iterations=50, tolerance=1e-10)
    assert plan.shape == (size_a, size_b) and discrepancy.shape == ()
    # measured: largest plan difference <= 1.6e-9 (entries ~0.01-0.2), discrepancy <= 5e-10
    np.testing.assert_allclose(plan.numpy(), pot_plan, rtol=0, atol=1e-7)
    assert abs(float(discrepancy) - pot_discrepancy) < 1e-7
    assert abs(float(discrepancy) - log["gw_dist"]) < 1e-7
    np.testing.assert_allclose(plan.sum(1).numpy(), weights_a, atol=1e-8)
    np.testing.assert_allclose(plan.sum(0).numpy(), weights_b, atol=1e-12)


def test_float32_with_the_loss_defaults_stays_close_to_pot():
    """The budget the losses use (50 x 30 iterations, float32) is still close to POT's answer."""
    for seed, size_a, size_b in PROBLEMS:
        cost_a, cost_b, weights_a, weights_b = random_problem(seed, size_a, size_b)
        pot_plan = ot.gromov.entropic_gromov_wasserstein(cost_a, cost_b, weights_a, weights_b,
                                                         epsilon=0.05)
        plan, _ = entropic_gromov_wasserstein(
            *[tensor.float() for tensor in as_tensors(cost_a, cost_b, weights_a, weights_b)],
            epsilon=0.05, iterations=50, sinkhorn_iterations=30)
        assert np.abs(plan.numpy() - pot_plan).max() < 1e-5  # measured <= 5e-8


def test_batched_equals_one_at_a_time():
    problems = [random_problem(seed, 7, 9) for seed in range(3)]
    stacked = [torch.stack(column) for column in zip(*(as_tensors(*p) for p in problems))]
    plans, discrepancies = entropic_gromov_wasserstein(*stacked, epsilon=0.05)
    assert plans.shape == (3, 7, 9) and discrepancies.shape == (3,)
    for index, problem in enumerate(problems):
        plan, discrepancy = entropic_gromov_wasserstein(*as_tensors(*problem), epsilon=0.05)
        torch.testing.assert_close(plans[index], plan)
        torch.testing.assert_close(discrepancies[index], discrepancy)


def test_log_domain_survives_an_epsilon_where_the_kernel_underflows():
    cost_a, cost_b, weights_a, weights_b = [t.float() for t in
                                            as_tensors(*random_problem(5, 9, 10))]
    epsilon = 1e-3
    # the classic Sinkhorn kernel exp(-gradient / epsilon) of the first step is all zeros here
    first_gradient = 2 * ((cost_a[:, None, :, None] - cost_b[None, :, None, :]) ** 2
                          * torch.outer(weights_a, weights_b)[None, None]).sum((-1, -2))
    assert float(torch.exp(-first_gradient / epsilon).max()) == 0.0
    plan, discrepancy = entropic_gromov_wasserstein(cost_a, cost_b, weights_a, weights_b,
                                                    epsilon=epsilon, iterations=50,
                                                    sinkhorn_iterations=300)
    assert torch.isfinite(plan).all() and torch.isfinite(discrepancy)
    torch.testing.assert_close(plan.sum(0), weights_b, rtol=0, atol=1e-5)
    torch.testing.assert_close(plan.sum(1), weights_a, rtol=0, atol=1e-5)  # measured 1.6e-6


def test_zero_weight_points_carry_no_mass_and_change_nothing():
    cost_a, cost_b, weights_a, weights_b = random_problem(6, 8, 7)
    dropped = [2, 5]
    kept = [index for index in range(8) if index not in dropped]
    padded_weights = weights_a.copy()
    padded_weights[dropped] = 0
    padded_weights /= padded_weights.sum()
    plan, _ = entropic_gromov_wasserstein(
        *as_tensors(cost_a, cost_b, padded_weights, weights_b), epsilon=0.05, iterations=1000,
        tolerance=1e-10)
    assert float(plan[dropped].abs().max()) == 0.0
    reduced_plan = ot.gromov.entropic_gromov_wasserstein(
        cost_a[np.ix_(kept, kept)], cost_b, padded_weights[kept], weights_b, epsilon=0.05)
    np.testing.assert_allclose(plan[kept].numpy(), reduced_plan, atol=1e-7)


def test_initial_plan_matches_pot_g0():
    cost_a, cost_b, weights_a, weights_b = random_problem(9, 7, 7)
    start = 0.7 * np.outer(weights_a, weights_b) + 0.3 * np.eye(7) / 7  # leaning to the diagonal
    pot_plan = ot.gromov.entropic_gromov_wasserstein(cost_a, cost_b, weights_a, weights_b,
                                                     epsilon=0.03, G0=start)
    plan, _ = entropic_gromov_wasserstein(
        *as_tensors(cost_a, cost_b, weights_a, weights_b), epsilon=0.03, iterations=1000,
        sinkhorn_iterations=50, tolerance=1e-10, initial_plan=torch.tensor(start))
    np.testing.assert_allclose(plan.numpy(), pot_plan, atol=1e-7)
    with pytest.raises(BadInput):
        entropic_gromov_wasserstein(*as_tensors(cost_a, cost_b), initial_plan=torch.ones(7, 6))


def directional_derivative(function, point_a, point_b, direction_a, direction_b, step=1e-5):
    plus = function(point_a + step * direction_a, point_b + step * direction_b)
    minus = function(point_a - step * direction_a, point_b - step * direction_b)
    return (plus - minus) / (2 * step)


@pytest.mark.parametrize("differentiate_plan", [False, True])
def test_gradients_match_finite_differences(differentiate_plan):
    """Envelope gradient = derivative of the entropic value L + epsilon sum T log T; unrolled
    gradient = derivative of L(T*(C)). Each is checked against its own finite differences."""
    rng = np.random.default_rng(7)
    cost_a, cost_b, _, _ = as_tensors(*random_problem(7, 4, 5))
    epsilon = 0.05
    settings = {"epsilon": epsilon, "iterations": 2000, "sinkhorn_iterations": 50,
                "tolerance": 1e-13}

    def value(a: torch.Tensor, b: torch.Tensor) -> float:
        plan, discrepancy = entropic_gromov_wasserstein(a, b, **settings)
        if differentiate_plan:
            return float(discrepancy)
        return float(discrepancy + epsilon * (plan * plan.log()).sum())

    leaf_a, leaf_b = cost_a.clone().requires_grad_(), cost_b.clone().requires_grad_()
    _, discrepancy = entropic_gromov_wasserstein(leaf_a, leaf_b,
                                                 differentiate_plan=differentiate_plan, **settings)
    discrepancy.backward()
    assert leaf_a.grad is not None and leaf_b.grad is not None
    assert float(leaf_a.grad.abs().max()) > 1e-3 and float(leaf_b.grad.abs().max()) > 1e-3
    for _ in range(3):
        direction_a = torch.tensor(rng.normal(size=(4, 4)))
        direction_b = torch.tensor(rng.normal(size=(5, 5)))
        direction_a, direction_b = direction_a + direction_a.T, direction_b + direction_b.T
        analytic = float((leaf_a.grad * direction_a).sum() + (leaf_b.grad * direction_b).sum())
        numeric = directional_derivative(value, cost_a, cost_b, direction_a, direction_b)
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-7)  # measured ~1e-8


def test_discrepancy_is_the_quadruple_sum():
    cost_a, cost_b, _, _ = as_tensors(*random_problem(8, 4, 3))
    plan = torch.rand(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    brute = ((cost_a[:, None, :, None] - cost_b[None, :, None, :]) ** 2
             * plan[:, :, None, None] * plan[None, None, :, :]).sum()
    torch.testing.assert_close(gromov_wasserstein_discrepancy(cost_a, cost_b, plan), brute)


def test_bad_arguments_raise_bad_input():
    square = torch.rand(4, 4)
    with pytest.raises(BadInput):
        entropic_gromov_wasserstein(square, torch.rand(3, 5))
    with pytest.raises(BadInput):
        entropic_gromov_wasserstein(square, square, epsilon=0.0)
    with pytest.raises(BadInput):
        entropic_gromov_wasserstein(square, square, weights_a=torch.ones(3) / 3)


# --- structure losses ---------------------------------------------------------------------------

WIDTH, HEIGHT, BATCH, JOINTS = 64, 48, 6, 14


def random_joints(seed: int = 0) -> torch.Tensor:  # (B, J, 2) inside the image, off the border
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(BATCH, JOINTS, 2, generator=generator) * torch.tensor(
        [WIDTH - 4.0, HEIGHT - 4.0]) + 2.0


def coordinate_features(power: float = 1.0) -> torch.Tensor:
    """(B, 2, H, W) features equal to the pixel centre's (x ** power / W ** (power - 1), y):
    bilinear sampling of power 1 gives back the joint positions exactly, so the appearance
    structure is the pose structure; larger powers bend it."""
    ys, xs = torch.meshgrid(torch.arange(HEIGHT) + 0.5, torch.arange(WIDTH) + 0.5, indexing="ij")
    features = torch.stack([xs ** power / WIDTH ** (power - 1), ys])
    return features.expand(BATCH, 2, HEIGHT, WIDTH).contiguous()


def test_pose_appearance_loss_is_near_zero_for_identical_structure_and_grows_with_bending():
    joints = random_joints()
    losses = [float(pose_appearance_gw_loss(joints, coordinate_features(power)))
              for power in (1.0, 1.5, 2.0, 3.0)]
    # measured for powers 1, 1.5, 2, 3: 7.8e-4, 9.9e-3, 2.8e-2, 6.8e-2
    assert losses[0] < 2e-3  # measured 7.8e-4: the entropic blur at epsilon 0.01
    assert all(later > earlier for earlier, later in itertools.pairwise(losses))
    assert losses[1] > 5 * losses[0]  # measured 12x
    noise = torch.randn(BATCH, 8, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1))
    assert float(pose_appearance_gw_loss(joints, noise)) > 50 * losses[0]


def test_appearance_loss_is_zero_for_the_real_features_and_grows_with_distortion():
    joints = random_joints(2)
    generator = torch.Generator().manual_seed(3)
    real = torch.randn(BATCH, 16, HEIGHT, WIDTH, generator=generator)
    distortion = torch.randn(BATCH, 16, HEIGHT, WIDTH, generator=generator)
    losses = [float(appearance_gw_loss(joints, real + scale * distortion, real))
              for scale in (0.0, 0.1, 0.3, 1.0)]
    # measured for distortions 0, 0.1, 0.3, 1: 2.4e-7, 5.2e-4, 4.3e-3, 2.5e-2
    assert losses[0] < 1e-4
    assert all(later > earlier for earlier, later in itertools.pairwise(losses))
    # a global change of feature scale (exposure) does not change the structure
    assert float(appearance_gw_loss(joints, 3.0 * real, real)) < 1e-4


def test_losses_send_gradients_to_the_generated_features():
    joints = random_joints(4)
    generator = torch.Generator().manual_seed(5)
    real = torch.randn(BATCH, 8, HEIGHT, WIDTH, generator=generator)
    fake = (real + 0.5 * torch.randn(BATCH, 8, HEIGHT, WIDTH, generator=generator)
            ).requires_grad_()
    appearance_gw_loss(joints, fake, real).backward()
    assert torch.isfinite(fake.grad).all() and float(fake.grad.abs().sum()) > 0
    fake.grad = None
    pose_appearance_gw_loss(joints, fake).backward()
    assert torch.isfinite(fake.grad).all() and float(fake.grad.abs().sum()) > 0
    # gradients land only near the joints (bilinear footprint): most pixels get none
    assert float((fake.grad.abs().sum(1) > 0).float().mean()) < 0.2


def test_invisible_joints_are_left_out():
    joints = random_joints(6)
    features = torch.cat([coordinate_features(2.0), torch.sin(coordinate_features()[:, :1] / 7)],
                         dim=1)  # (B, 3, H, W): a bent structure, not the pose's
    visibility = torch.ones(BATCH, JOINTS)
    visibility[:, 10:] = 0.0
    moved = joints.clone()
    moved[:, 10:] = torch.nan  # where an invisible joint is does not matter, even NaN
    with_mask = pose_appearance_gw_loss(moved, features, visibility)
    without = pose_appearance_gw_loss(joints[:, :10], features)
    assert torch.isfinite(with_mask)
    # equal up to rounding (measured ~1e-5 relative); GW is not convex, so rounding may move
    # the solver a little differently with the padded matrices
    torch.testing.assert_close(with_mask, without, rtol=1e-3, atol=1e-6)
    # samples with fewer than 3 visible joints are skipped; none at all gives a zero with a graph
    visibility[:, 2:] = 0.0
    empty = pose_appearance_gw_loss(joints, features.requires_grad_(), visibility)
    assert float(empty.detach()) == 0.0 and empty.requires_grad


def test_normalized_distances_have_mean_one_over_visible_pairs():
    points = torch.rand(2, 6, 3, generator=torch.Generator().manual_seed(8)) * 50
    weights = torch.ones(2, 6)
    weights[1, 4:] = 0
    distances = normalized_distances(points, weights)
    assert float(distances[0].sum() / 30) == pytest.approx(1.0)
    assert float(distances[1, :4, :4].sum() / 12) == pytest.approx(1.0)
