"""`calculators.load_model` (one resolver for names and checkpoint paths), registry integrity and fingerprints."""

from __future__ import annotations

import hashlib

import pytest
import torch
from gemnet_helpers import pt_slab_o, tiny_model

import calculators.loading
from calculators import load_model, model_fingerprint
from calculators.batch import AtomsBatch
from calculators.fingerprint import fingerprint_id
from calculators.gemnet import GemNetOC, save_checkpoint
from calculators.loading import NoDefaultStudentError, resolve_source
from calculators.registry import cached_checkpoint, load_registry


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
def test_checkpoint_suffixes_load_the_same_model(tmp_path, suffix):
    model = tiny_model(dtype=torch.float32)
    path = save_checkpoint(model, tmp_path / f"student{suffix}")
    loaded = load_model(path, dtype=torch.float32)
    assert isinstance(loaded, GemNetOC) and not loaded.training
    batch = AtomsBatch.from_atoms([pt_slab_o()])
    torch.testing.assert_close(loaded.predict(batch)["energy"], model.predict(batch)["energy"])
    assert load_model(str(path)) is not loaded  # str paths too, a fresh model each call
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / f"missing{suffix}")


def test_names_and_instances():
    model = tiny_model()
    assert load_model(model) is model  # an AtomisticModel passes through
    with pytest.raises(KeyError, match="unknown model name 'no-such-model'"):
        load_model("no-such-model")
    with pytest.raises(FileNotFoundError, match="python -m calculators.cli download gemnet-oc-oc20-oc22"):
        resolve_source("gemnet-oc-teacher", cache_dir="/nonexistent")  # an alias, not cached: never downloads


def test_default_student_is_a_registry_name(monkeypatch, tmp_path):
    assert "default-student" in load_registry()
    src = resolve_source("default-student")
    assert src.path == calculators.loading.DEFAULT_STUDENT and src.architecture == "gemnet-oc"
    monkeypatch.setattr(calculators.loading, "DEFAULT_STUDENT", tmp_path / "default_student.pt")
    with pytest.raises(NoDefaultStudentError, match="distill train") as err:
        load_model("default-student")
    assert "distillation issue" not in str(err.value)


def test_registered_sha256_is_checked_on_every_use(tmp_path):
    (tmp_path / "toy.pt").write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    reg = {"toy": {"architecture": "gemnet-oc", "url": "file:///x", "filename": "toy.pt", "sha256": good}}
    assert cached_checkpoint("toy", tmp_path, reg) == tmp_path / "toy.pt"
    reg["toy"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match="does not match the sha256"):
        cached_checkpoint("toy", tmp_path, reg)
    reg["toy"]["sha256"] = None  # nothing pinned: used unchecked
    assert cached_checkpoint("toy", tmp_path, reg) == tmp_path / "toy.pt"


def test_downloadable_registry_entries_say_why_a_sha256_is_missing():
    for name, entry in load_registry().items():
        if entry.get("url") and not entry.get("sha256"):
            assert "sha256" in entry["notes"], name  # the note tells how to pin it


def test_fingerprint_keeps_recorded_class_paths():
    fp = model_fingerprint(tiny_model(), "tiny")
    assert fp["class"] == "distill.gemnet.model.GemNetOC"  # as recorded by label caches before the move
    assert fp["name"] == "tiny" and fp["versions"]["torch"] == torch.__version__
    assert fp == model_fingerprint(tiny_model(), "tiny")  # deterministic
    other = model_fingerprint(tiny_model(seed=1), "tiny")
    assert other["weights_sha256"] != fp["weights_sha256"]
    assert fingerprint_id(fp).startswith("tiny-") and fingerprint_id(fp) != fingerprint_id(other)
    assert fingerprint_id(fp) == fingerprint_id({**fp, "name": "tiny"})
    assert fingerprint_id(fp).split("-")[-1] == fingerprint_id({**fp, "name": "other"}).split("-")[-1]
