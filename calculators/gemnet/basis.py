"""Radial, circular and spherical basis functions of GemNet-OC (closed forms, no sympy)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from calculators.gemnet.layers import ScaleFactor


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff 1 + a·x^p + b·x^(p+1) + c·x^(p+2) for x = d/cutoff < 1, else 0."""

    def __init__(self, exponent: int = 5):
        super().__init__()
        if exponent <= 0:
            raise ValueError("envelope exponent must be positive")
        p = float(exponent)
        self.p = p
        self.a = -(p + 1) * (p + 2) / 2
        self.b = p * (p + 2)
        self.c = -p * (p + 1) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        val = 1 + self.a * x**self.p + self.b * x ** (self.p + 1) + self.c * x ** (self.p + 2)
        return torch.where(x < 1, val, torch.zeros_like(x))


class ExponentialEnvelope(nn.Module):
    """exp(−x²/((1−x)(1+x))) for x < 1 (Unke et al. 2021)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        val = torch.exp(-(x**2) / ((1 - x) * (1 + x)))
        return torch.where(x < 1, val, torch.zeros_like(x))


def _exp_cut(dtype: torch.dtype) -> tuple[float, float]:
    """(floor, zero_below) for `dtype`: exp arguments are floored at log(e·tiny) (-86.3 in float32, -707.4 in
    float64; tiny = the smallest normal number), and results below e²·tiny are set to exactly 0."""
    floor = math.log(torch.finfo(dtype).tiny) + 1.0
    return floor, math.exp(floor + 1.0)


class GaussianBasis(nn.Module):
    """Gaussians on an even grid between start and stop (width = grid spacing)."""

    def __init__(self, start: float = 0.0, stop: float = 5.0, num_gaussians: int = 50, trainable: bool = False):
        super().__init__()
        offset = torch.linspace(start, stop, num_gaussians)
        if trainable:
            self.offset = nn.Parameter(offset)
        else:
            self.register_buffer("offset", offset)
        self.coeff = -0.5 / ((stop - start) / (num_gaussians - 1)) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arg = self.coeff * (x[:, None] - self.offset[None, :]) ** 2
        # exp() of an argument below log(smallest normal float) is a denormal, which the CPU computes several times
        # slower (about a third of the student's Gaussians are that far out) and which would slow the products
        # downstream: the argument is floored and such values are set to exactly 0 (they were < 1e-37 anyway)
        floor, zero_below = _exp_cut(arg.dtype)
        if torch.is_grad_enabled():
            return torch.nn.functional.threshold(torch.exp(arg.clamp(min=floor)), zero_below, 0.0)
        return torch.nn.functional.threshold_(arg.clamp_(min=floor).exp_(), zero_below, 0.0)  # own buffer


class SphericalBesselBasis(nn.Module):
    """sqrt(2/c³) sin(nπx)/x, n = 1..num_radial (trainable frequencies)."""

    def __init__(self, num_radial: int, cutoff: float):
        super().__init__()
        self.norm_const = math.sqrt(2 / cutoff**3)
        self.frequencies = nn.Parameter(torch.tensor(np.pi * np.arange(1, num_radial + 1, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_const / x[:, None] * torch.sin(self.frequencies * x[:, None])


class BernsteinBasis(nn.Module):
    """Bernstein polynomials in exp(−γx) (Unke et al. 2021)."""

    def __init__(self, num_radial: int, pregamma_initial: float = 0.45264):
        super().__init__()
        k = np.arange(num_radial)
        prefactor = np.array([math.comb(num_radial - 1, int(i)) for i in k], dtype=np.float64)
        self.register_buffer("prefactor", torch.tensor(prefactor, dtype=torch.float), persistent=False)
        self.pregamma = nn.Parameter(torch.tensor(pregamma_initial, dtype=torch.float))
        self.register_buffer("exp1", torch.arange(num_radial)[None, :], persistent=False)
        self.register_buffer("exp2", (num_radial - 1 - torch.arange(num_radial))[None, :], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma = torch.nn.functional.softplus(self.pregamma)
        e = torch.exp(-gamma * x)[:, None]
        return self.prefactor * e**self.exp1 * (1 - e) ** self.exp2


class RadialBasis(nn.Module):
    """Envelope(d/c) × basis(d/c), shape (E, num_radial)."""

    def __init__(
        self,
        num_radial: int,
        cutoff: float,
        rbf: dict | None = None,
        envelope: dict | None = None,
        scale_basis: bool = False,
    ):
        super().__init__()
        rbf = dict(rbf or {"name": "gaussian"})
        envelope = dict(envelope or {"name": "polynomial", "exponent": 5})
        self.inv_cutoff = 1.0 / cutoff
        self.scale_basis = scale_basis
        if scale_basis:
            self.scale_rbf = ScaleFactor()
        env_name = envelope.pop("name").lower()
        if env_name == "polynomial":
            self.envelope = PolynomialEnvelope(**envelope)
        elif env_name == "exponential":
            self.envelope = ExponentialEnvelope(**envelope)
        else:
            raise ValueError(f"unknown envelope {env_name!r}")
        name = rbf.pop("name").lower()
        if name == "gaussian":
            self.rbf = GaussianBasis(start=0, stop=1, num_gaussians=num_radial, **rbf)
        elif name == "spherical_bessel":
            self.rbf = SphericalBesselBasis(num_radial=num_radial, cutoff=cutoff, **rbf)
        elif name == "bernstein":
            self.rbf = BernsteinBasis(num_radial=num_radial, **rbf)
        else:
            raise ValueError(f"unknown radial basis {name!r}")

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        x = d * self.inv_cutoff
        out = self.envelope(x)[:, None] * self.rbf(x)
        if self.scale_basis:
            out = self.scale_rbf(out)
        return out


def legendre_ylm0(z: torch.Tensor, num: int) -> torch.Tensor:
    """Real spherical harmonics with m = 0, Y_l0(z) = sqrt((2l+1)/4π) P_l(z), l < num; shape (T, num)."""
    p = [torch.ones_like(z)]
    if num > 1:
        p.append(z)
    for ell in range(2, num):
        p.append(((2 * ell - 1) * z * p[ell - 1] - (ell - 1) * p[ell - 2]) / ell)
    return torch.stack([math.sqrt((2 * ell + 1) / (4 * math.pi)) * p[ell] for ell in range(num)], dim=1)


def real_spherical_harmonics(z: torch.Tensor, phi: torch.Tensor, num: int) -> torch.Tensor:
    """Real Y_lm(z = cos θ, φ) for l < num, ordered per l as m = 0, 1..l, −l..−1; shape (T, num²).

    Y_l±m = √2 K_lm P_l^m(z) {cos, sin}(mφ), with P_l^m without the Condon–Shortley phase.
    """
    s = torch.sqrt(torch.clamp(1 - z**2, min=0.0))
    plm: dict[tuple[int, int], torch.Tensor] = {(0, 0): torch.ones_like(z)}
    for m in range(1, num):  # P_mm = (2m-1)!! s^m (no Condon-Shortley phase)
        plm[(m, m)] = (2 * m - 1) * s * plm[(m - 1, m - 1)]
    for m in range(num - 1):
        plm[(m + 1, m)] = (2 * m + 1) * z * plm[(m, m)]
    for ell in range(2, num):
        for m in range(ell - 1):
            plm[(ell, m)] = ((2 * ell - 1) * z * plm[(ell - 1, m)] - (ell + m - 1) * plm[(ell - 2, m)]) / (ell - m)
    out = []
    for ell in range(num):

        def k(m: int, ell: int = ell) -> float:
            return math.sqrt((2 * ell + 1) / (4 * math.pi) * math.factorial(ell - m) / math.factorial(ell + m))

        row = [k(0) * plm[(ell, 0)]]
        row += [math.sqrt(2) * k(m) * plm[(ell, m)] * torch.cos(m * phi) for m in range(1, ell + 1)]
        row += [math.sqrt(2) * k(m) * plm[(ell, m)] * torch.sin(m * phi) for m in range(ell, 0, -1)]
        out += row
    return torch.stack(out, dim=1)


class CircularBasisLayer(nn.Module):
    """Radial basis of the edge and a basis of one angle (cos φ): Y_l0 or Gaussians."""

    def __init__(self, num_spherical: int, radial_basis: RadialBasis, cbf: dict, scale_basis: bool = False):
        super().__init__()
        self.radial_basis = radial_basis
        self.num_spherical = num_spherical
        self.scale_basis = scale_basis
        if scale_basis:
            self.scale_cbf = ScaleFactor()
        cbf = dict(cbf)
        self.kind = cbf.pop("name").lower()
        if self.kind == "gaussian":
            self.cosφ_basis = GaussianBasis(start=-1, stop=1, num_gaussians=num_spherical, **cbf)
        elif self.kind != "spherical_harmonics":
            raise ValueError(f"unknown circular basis {self.kind!r}")

    def forward(
        self, d: torch.Tensor, cos_angle: torch.Tensor, radial: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(radial basis (E, R) of `d`, or `radial` when the caller computed that same basis already; angular basis
        (T, S) of `cos_angle`)."""
        rad = self.radial_basis(d) if radial is None else radial
        if self.kind == "gaussian":
            cir = self.cosφ_basis(cos_angle)
        else:
            cir = legendre_ylm0(cos_angle, self.num_spherical)
        if self.scale_basis:
            cir = self.scale_cbf(cir)
        return rad, cir


class SphericalBasisLayer(nn.Module):
    """Radial basis and a basis of two angles (cos φ, dihedral θ)."""

    def __init__(self, num_spherical: int, radial_basis: RadialBasis, sbf: dict, scale_basis: bool = False):
        super().__init__()
        self.num_spherical = num_spherical
        self.radial_basis = radial_basis
        self.scale_basis = scale_basis
        if scale_basis:
            self.scale_sbf = ScaleFactor()
        sbf = dict(sbf)
        self.kind = sbf.pop("name").lower()
        if self.kind == "gaussian_outer":
            self.circular_basis = GaussianBasis(start=-1, stop=1, num_gaussians=num_spherical, **sbf)
        elif self.kind not in ("spherical_harmonics", "legendre_outer"):
            raise ValueError(f"unknown spherical basis {self.kind!r}")

    def forward(
        self, d: torch.Tensor, cos_angle: torch.Tensor, dihedral: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rad = self.radial_basis(d)
        n = self.num_spherical
        if self.kind == "spherical_harmonics":
            sph = real_spherical_harmonics(cos_angle, dihedral, n)
        else:
            if self.kind == "legendre_outer":
                a, b = legendre_ylm0(cos_angle, n), legendre_ylm0(torch.cos(dihedral), n)
            else:
                a, b = self.circular_basis(cos_angle), self.circular_basis(torch.cos(dihedral))
            sph = (a[:, :, None] * b[:, None, :]).reshape(cos_angle.shape[0], n * n)
        if self.scale_basis:
            sph = self.scale_sbf(sph)
        return rad, sph
