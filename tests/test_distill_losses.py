"""Distillation losses on tiny hand-checkable inputs."""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from gemnet_helpers import pt_slab_o, tiny_model

from calculators.batch import AtomsBatch
from distill.losses import (
    DistillationLoss,
    LossConfig,
    ProjectionHead,
    atomic_energy_loss,
    energy_loss,
    force_loss,
    fork_loss,
    hessian_loss,
    info_nce,
    n2n_loss,
    student_hessian_rows,
    unique_pairs,
)


def test_task_losses_by_hand():
    pred, target, natoms = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 3.0]), torch.tensor([2, 3])
    assert math.isclose(float(energy_loss(pred, target, natoms, "mae")), 1.0)
    assert math.isclose(float(energy_loss(pred, target, natoms, "mse")), 1.0)
    f = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    assert math.isclose(float(force_loss(f, torch.zeros_like(f), "l2mae")), 2.5)
    assert float(force_loss(f, f)) == 0.0


def test_info_nce_equal_similarities_is_log_k():
    k = 7
    same = torch.ones(k, 4)
    assert math.isclose(float(info_nce(same, same)), math.log(k), rel_tol=1e-6)


def test_info_nce_identical_distinct_directions_is_small():
    eye = torch.eye(6)
    # orthogonal negatives: −log(e^{1/τ} / (e^{1/τ} + 5)) = log(1 + 5 e^{−1/τ})
    assert math.isclose(float(info_nce(eye, eye, tau=0.15)), math.log1p(5 * math.exp(-1 / 0.15)), rel_tol=1e-3)
    assert float(info_nce(eye, eye.flip(0), tau=0.15)) > math.log(6)


def test_unique_pairs_merges_directions_and_images():
    edges = torch.tensor([[0, 1, 0, 1, 2, 2, 0], [1, 0, 1, 0, 0, 2, 2]])  # (0,1) x4 incl. images, (0,2) x2, self
    pairs = unique_pairs(edges)
    assert sorted(map(tuple, pairs.T.tolist())) == [(0, 1), (0, 2)]
    many = torch.randint(0, 50, (2, 2000))
    assert unique_pairs(many, 30, torch.Generator().manual_seed(0)).shape == (2, 30)


def test_fork_gradients_reach_student_and_head_not_teacher():
    torch.manual_seed(0)
    student = torch.randn(5, 3, requires_grad=True)
    teacher = torch.randn(5, 4, requires_grad=True)
    head = ProjectionHead(3, 4)
    edges = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 4, 4]])
    loss = fork_loss(student, teacher, edges, head)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert all(p.grad is not None for p in head.parameters())
    assert teacher.grad is None


def test_fork_leaves_out_pairs_the_teacher_sees_as_equivalent():
    """Atoms 0 and 1 have the same teacher embedding (a symmetry): their relational vector is noise, dropped."""
    torch.manual_seed(0)
    student = torch.randn(5, 3)
    teacher = torch.randn(5, 4)
    teacher[1] = teacher[0]
    head = ProjectionHead(3, 4)
    edges = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 4, 4]])
    loss = fork_loss(student, teacher, edges, head).detach()
    without = fork_loss(student, teacher, edges[:, 1:], head).detach()  # the same loss without the (0, 1) pair
    assert math.isclose(float(loss), float(without), rel_tol=1e-6)
    # noise far below the floor moves nothing (unfloored, the noisy direction of r_01 would change the loss)
    noisy = teacher + 1e-7 * torch.randn_like(teacher)
    assert math.isclose(float(fork_loss(student, noisy, edges, head).detach()), float(loss), rel_tol=1e-4)
    unfloored = fork_loss(student, noisy, edges, head, min_norm=0.0).detach()
    assert not math.isclose(float(unfloored), float(loss), rel_tol=1e-3)
    # every pair equivalent: zero loss that still backpropagates
    flat = fork_loss(student.requires_grad_(), torch.ones(5, 4), edges, head)
    assert float(flat.detach()) == 0.0
    flat.backward()


def test_n2n_atomic_hessian_zero_when_equal():
    x = torch.randn(4, 3)
    assert float(n2n_loss(x, x)) == 0.0
    assert float(atomic_energy_loss(x[:, 0], x[:, 0])) == 0.0
    rows = torch.randn(2, 3, 9)
    assert float(hessian_loss(rows, rows, torch.tensor([3, 2]))) == 0.0
    other = rows.clone()
    other[1, :, 6:] += 5.0  # padding of the 2-atom structure is ignored
    assert float(hessian_loss(rows, other, torch.tensor([3, 2]))) == 0.0


def test_student_hessian_rows_match_calculators_for_conservative_model():
    from calculators.hessian import hessian_rows

    model = tiny_model(direct_forces=False)
    batch = AtomsBatch.from_atoms([pt_slab_o()], dtype=torch.float64)
    rows = torch.tensor([[0, 37]])

    class Wrapped:
        conservative = True
        supports_create_graph = True

        def predict(self, b, forces=True, create_graph=False):
            return model(b, forces=forces, create_graph=create_graph)

    ref = hessian_rows(Wrapped(), batch, rows, method="autograd")
    pos = batch.positions.clone().requires_grad_(True)
    b2 = replace(batch, positions=pos)
    out = model(b2, create_graph=True)
    got = student_hessian_rows(out["forces"], pos, b2, rows)
    torch.testing.assert_close(got, ref)


def test_distillation_loss_all_terms_backprop_on_tiny_gemnet():
    model = tiny_model(dtype=torch.float32, direct_forces=True).train()
    batch = AtomsBatch.from_atoms([pt_slab_o(), pt_slab_o(seed=2)])
    n = batch.num_atoms
    labels = {
        "energy": torch.randn(2),
        "forces": torch.randn(n, 3),
        "atom_energies": torch.randn(n),
        "node_features": torch.randn(n, 5),
        "hessian_rows": torch.randn(2, 2, 3 * int(batch.natoms.max())),
        "hessian_index": torch.tensor([[0, 5], [3, 9]]),
    }
    cfg = LossConfig(fork=10.0, n2n=1.0, n2n_features=["x_E", "h1"], instance=1.0, hessian=1.0, atomic=1.0)
    loss = DistillationLoss(cfg, student_width=16, teacher_width=5)
    total, terms = loss(model, batch, labels, torch.Generator().manual_seed(0))
    assert set(terms) == {"energy", "forces", "fork", "instance", "n2n", "atomic", "hessian", "total"}
    total.backward()
    assert all(p.grad is not None for p in loss.parameters())
    assert model.out_energy.linear.weight.grad.abs().sum() > 0


def test_energy_gradient_term_trains_the_energy_head_on_forces():
    """energy_gradient: the force loss of −∂E/∂x. For a conservative student it equals the forces term; for a
    direct-force student it is a different number whose gradient reaches the energy head (the forces term's
    does not)."""
    batch = AtomsBatch.from_atoms([pt_slab_o(), pt_slab_o(seed=2)])
    labels = {"energy": torch.randn(2), "forces": torch.randn(batch.num_atoms, 3)}
    cons = tiny_model(dtype=torch.float32, direct_forces=False).train()
    _, terms = DistillationLoss(LossConfig(energy=0.0, energy_gradient=1.0), 16)(cons, batch, labels)
    assert math.isclose(terms["energy_gradient"], terms["forces"], rel_tol=1e-5)

    direct = tiny_model(dtype=torch.float32, direct_forces=True).train()
    only_forces, _ = DistillationLoss(LossConfig(energy=0.0), 16)(direct, batch, labels)
    only_forces.backward()
    grad = direct.out_energy.linear.weight.grad
    assert grad is None or float(grad.abs().sum()) == 0.0
    direct.zero_grad()
    total, terms = DistillationLoss(LossConfig(energy=0.0, forces=0.0, energy_gradient=1.0), 16)(direct, batch, labels)
    assert set(terms) == {"energy_gradient", "total"} and math.isfinite(terms["energy_gradient"])
    total.backward()
    assert float(direct.out_energy.linear.weight.grad.abs().sum()) > 0
