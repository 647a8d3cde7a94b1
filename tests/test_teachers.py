"""Teacher tests: SevenNet-0 (offline, weights in the sevenn wheel) through the model checks, Hessian rows,
the registry and explicit checkpoint download (no network: file:// URLs and a closed 127.0.0.1 port)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase import Atoms

from calculators import (
    DEFAULT_STUDENT,
    CheckpointUnavailable,
    SevenNetModel,
    TeacherCalculator,
    cached_checkpoint,
    download_checkpoint,
    hessian_rows,
    load_model,
    load_registry,
    model_fingerprint,
    predict_many,
)
from calculators import testing as mc
from calculators.ase_calculator import ModelCalculator
from calculators.batch import AtomsBatch, StructureError
from calculators.model_api import AtomisticModel

torch.set_num_threads(1)
pytest.importorskip("sevenn")


@pytest.fixture(scope="module")
def sevennet():
    return load_model("sevennet-0", device="cpu")


def test_sevennet_implements_contract(sevennet):
    assert isinstance(sevennet, AtomisticModel)
    assert sevennet.conservative and sevennet.cutoff == 5.0
    assert 0.8e6 < sum(p.numel() for p in sevennet.parameters()) < 0.9e6
    assert sevennet.mptrj_energies  # screening flags PBE/PBE+U mixing for it


def test_sevennet_fingerprint_matches_existing_label_caches(sevennet):
    # label caches and the shipped student recorded this exact dict; it must not change when modules move
    expected = {
        "name": "sevennet-0",
        "class": "calculators.teachers.sevennet.SevenNetModel",
        "versions": {"torch": torch.__version__, "sevenn": "0.13.0"},
        "weights_sha256": "db2c8cdf1782135a32fc9d2bb199696270ef952376ec38e6daa96766c9171a4d",
    }
    assert model_fingerprint(sevennet, "sevennet-0") == expected
    shipped = torch.load(DEFAULT_STUDENT, weights_only=True)["metadata"]["teacher"]
    assert shipped == expected | {"versions": shipped["versions"]} and shipped["versions"]["sevenn"] == "0.13.0"


@pytest.mark.parametrize(
    "check",
    mc.ALL_CHECKS,
    ids=lambda c: c.__name__,
)
def test_model_checks_sevennet(check, sevennet):
    check(sevennet)


def test_sevennet_matches_upstream_calculator(sevennet):
    from sevenn.calculator import SevenNetCalculator

    atoms = mc.pt_slab_o(displace=0.5)
    ours = sevennet.predict(AtomsBatch.from_atoms(atoms), features=True)
    atoms.calc = SevenNetCalculator("7net-0", device="cpu")
    assert abs(ours["energy"][0].item() - atoms.get_potential_energy()) < 1e-3
    atoms.get_forces()
    np.testing.assert_allclose(ours["forces"].numpy(), atoms.calc.results["forces"], atol=1e-4)
    np.testing.assert_allclose(ours["atom_energies"].numpy(), atoms.calc.results["energies"], atol=1e-4)
    assert ours["node_features"].shape == (len(atoms), 128)


def test_sevennet_skin_reuse_gives_same_energies(sevennet):
    atoms = mc.pt_slab_o()
    calc = TeacherCalculator(sevennet, device="cpu", skin=0.5)
    atoms.calc = calc
    energies = []
    for k in range(4):
        atoms.positions[-1, 2] += 0.1
        energies.append(atoms.get_potential_energy())
        fresh = sevennet.predict(AtomsBatch.from_atoms(atoms))["energy"][0].item()
        assert abs(energies[-1] - fresh) < 1e-4, k
    assert calc.neighbor_builds == 2 and calc.model_calls == 4  # rebuilt once the O moved 0.3 Å > skin/2


def test_sevennet_float64_is_cast_with_a_clear_message(sevennet):
    default = torch.get_default_dtype()

    with pytest.raises(ValueError, match="float32 only"):
        SevenNetModel(device="cpu", dtype=torch.float64)
    with pytest.warns(UserWarning, match="float32 only"):
        assert TeacherCalculator(device="cpu", dtype="float64").model.dtype == torch.float32
    atoms = mc.pt_slab_o()
    with pytest.warns(UserWarning, match="float32 only"):
        atoms.calc = TeacherCalculator(sevennet, device="cpu", dtype="float64")
    assert torch.get_default_dtype() == default and sevennet.dtype == torch.float32
    ref = sevennet.predict(AtomsBatch.from_atoms(atoms))["energy"][0].item()
    assert abs(atoms.get_potential_energy() - ref) < 1e-3


def test_teacher_calculator_default_is_sevennet():
    calc = TeacherCalculator(device="cpu")
    assert type(calc.model).__name__ == "SevenNetModel"
    atoms = mc.pt_slab_o()
    atoms.calc = calc
    assert -80 < atoms.get_potential_energy() < -60


def test_sevennet_hessian_rows_autograd_vs_fd(sevennet):
    batch = AtomsBatch.from_atoms([mc.pt_slab_o(displace=0.5)])
    rows = torch.tensor([[3 * 12 + 2, 3 * 12]])
    h_ad = hessian_rows(sevennet, batch, rows, method="autograd")
    h_fd = hessian_rows(sevennet, batch, rows, method="fd", step=1e-2)
    assert h_ad.shape == (1, 2, 39)
    torch.testing.assert_close(h_ad, h_fd, atol=0.05, rtol=0.05)


def test_sevennet_labels_for_distillation(sevennet, tmp_path):
    from distill.labels import LabelCache, LabelSettings, label_structures

    structures = [mc.pt_slab_o(displace=0.5), mc.sample_structures()[2]]
    settings = LabelSettings(hessian_rows=1, hessian_method="autograd", chunk_size=2)
    label_structures(structures, sevennet, tmp_path, settings, teacher_name="sevennet-0")
    records = LabelCache(tmp_path).records()
    direct = sevennet.predict(AtomsBatch.from_atoms(structures[:1], tags=[structures[0].get_tags()]))
    assert float(records[0]["energy"]) == pytest.approx(float(direct["energy"][0]), abs=1e-4)
    np.testing.assert_allclose(records[0]["forces"].numpy(), direct["forces"].numpy(), atol=1e-4)
    for atoms, rec in zip(structures, records, strict=True):
        n = len(atoms)
        assert rec["node_features"].shape == (n, 128) and rec["hessian_rows"].shape == (1, 3 * n)
        row = int(rec["hessian_index"][0])
        assert rec["hessian_rows"][0].abs().sum() > 0
        assert not bool(rec["fixed"][row // 3])  # rows are sampled among free atoms


def test_sevennet_unknown_element_and_predict_many(sevennet):
    po = Atoms("Po", positions=[[0, 0, 0]])
    with pytest.raises(StructureError, match="no embedding"):
        sevennet.predict(AtomsBatch.from_atoms(po))
    atoms = mc.pt_slab_o()
    atoms.calc = ModelCalculator(sevennet, device="cpu")
    res = predict_many(sevennet, [atoms, mc.sample_structures()[2]], progress=False)
    assert abs(res[0]["energy"] - atoms.get_potential_energy()) < 1e-3


# ------------------------------------------------------------------ registry and download
def test_registry_names_public_gemnet_checkpoint():
    reg = load_registry()
    entry = reg["gemnet-oc-oc20-oc22"]
    assert entry["url"] == (
        "https://dl.fbaipublicfiles.com/opencatalystproject/models/2022_09/oc22/s2ef/gnoc_oc22_oc20_all_s2ef.pt"
    )
    assert entry["filename"] == "gnoc_oc22_oc20_all_s2ef.pt" and entry["architecture"] == "gemnet-oc"
    assert reg["sevennet-0"]["offline"] is True


def _registry(url: str, sha256: str | None = None) -> dict:
    return {"toy": {"architecture": "gemnet-oc", "url": url, "filename": "toy.pt", "sha256": sha256}}


def test_download_from_local_file_then_cache_hit(tmp_path):
    src = tmp_path / "src.pt"
    src.write_bytes(b"checkpoint-bytes")
    import hashlib

    sha = hashlib.sha256(b"checkpoint-bytes").hexdigest()
    cache = tmp_path / "cache"
    reg = _registry(src.as_uri(), sha)
    assert cached_checkpoint("toy", cache, reg) is None
    path = download_checkpoint("toy", cache, registry=reg)
    assert path.read_bytes() == b"checkpoint-bytes" and path.parent == cache
    assert [p.name for p in cache.iterdir()] == ["toy.pt"]  # no partial files left
    src.unlink()  # a cache hit needs no source
    assert download_checkpoint("toy", cache, registry=reg) == path
    bad = _registry(src.as_uri(), "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        download_checkpoint("toy", cache, registry=bad)


def test_download_offline_error_is_clear(tmp_path):
    reg = _registry("http://127.0.0.1:9/gnoc.pt")  # discard port: nothing listens
    with pytest.raises(CheckpointUnavailable, match="offline"):
        download_checkpoint("toy", tmp_path, registry=reg, timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_gemnet_teacher_not_cached_never_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        load_model("gemnet-oc-oc20-oc22", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert json.dumps(load_registry())  # registry is plain JSON


def test_registry_cli_lists_and_downloads(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from calculators.cli import app

    out = CliRunner().invoke(app, ["list"]).output
    assert "sevennet-0" in out and "gnoc_oc22_oc20_all_s2ef.pt" in out and "default-student" in out
    res = CliRunner().invoke(app, ["download", "sevennet-0", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 2 and "no downloadable checkpoint" in res.output
