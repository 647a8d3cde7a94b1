"""Issue 13, security: no code runs from a checkpoint file, the API key is validated and never echoed, the request
rate stays within CatalysisHub's limits, pubIds are names (never paths), outputs get the umask's permissions."""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest
import torch
from typer.testing import CliRunner

from screening.cli import app as screen_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()


class _RunsCode:
    """Unpickling this runs a shell command (what a crafted checkpoint does)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------- SevenNet checkpoints
def test_sevennet_model_never_unpickles_code_from_a_user_file(tmp_path):
    from calculators.sevennet import SevenNetModel, UnsafeCheckpointError

    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {}, "config": {"x": _RunsCode(str(marker))}}, evil)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load .*evil.pth.*(GLOBAL|pickled)"):
        SevenNetModel(str(evil))
    assert not marker.exists()  # nothing ran


def test_sevennet_user_checkpoint_loads_weights_only(tmp_path):
    import shutil

    import sevenn.util

    from calculators.sevennet import load_sevenn_checkpoint

    copy = tmp_path / "copy.pth"
    shutil.copy(sevenn.util.pretrained_name_to_path("7net-0"), copy)
    checkpoint = load_sevenn_checkpoint(copy)  # plain tensors and numpy arrays: accepted without unpickling code
    assert float(checkpoint.config["cutoff"]) == 5.0 and checkpoint.model_state_dict


def test_sevennet_registry_file_is_checked_against_its_sha256_before_loading(monkeypatch):
    from calculators import sevennet

    registry = sevennet.load_registry()
    registry["sevennet-0"] = {**registry["sevennet-0"], "sha256": "0" * 64}
    monkeypatch.setattr(sevennet, "load_registry", lambda: registry)
    with pytest.raises(sevennet.UnsafeCheckpointError, match="not the registered 0000"):
        sevennet.load_sevenn_checkpoint("7net-0")
    # a sevenn pretrained model the registry does not pin is refused, not unpickled
    with pytest.raises(sevennet.UnsafeCheckpointError, match="not a SevenNet model listed"):
        sevennet.load_sevenn_checkpoint("7net-l3i5")


# ----------------------------------------------------------------------------- CatalysisHub API key and rate
def _dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("key", "what"),
    [("secret-part-one\nsecret-part-two", "a newline"), ("secret\rtwo", "a carriage return"),
     ("sécret-key-ünïcode", "not ASCII"), ("秘密の鍵", "not ASCII")],
)  # fmt: skip
def test_api_key_with_bad_characters_is_refused_without_echo(tmp_path, monkeypatch, key, what):
    monkeypatch.setenv("CATHUB_API_KEY", key)
    monkeypatch.setenv("CATHUB_API_URL", _dead_url())
    res = runner.invoke(screen_app, ["fetch", "--dataset", "alonso", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "CATHUB_API_KEY contains" in res.output and what in res.output and "not shown" in res.output
    for part in key.replace("\r", "\n").split("\n"):
        assert part.strip() not in res.output


@pytest.mark.parametrize("rate", ["0", "-1", "10.5", "100000", "nan", "inf"])
def test_fetch_rate_outside_the_api_limit_is_refused(tmp_path, rate):
    res = runner.invoke(screen_app, ["fetch", "--dataset", "alonso", "--cache-dir", str(tmp_path), "--rate", rate])
    assert res.exit_code == 2 and "--rate" in res.output
    assert not any(tmp_path.iterdir())  # refused before anything was done


def test_client_refuses_rates_and_budgets_above_the_limits():
    from screening.cathub import CatHubClient

    for rpm in (0, -1, 60, float("nan")):
        with pytest.raises(ValueError, match="request rate"):
            CatHubClient("http://localhost:1", api_key="k", requests_per_minute=rpm)
    with pytest.raises(ValueError, match="daily budget"):
        CatHubClient("http://localhost:1", api_key="k", daily_budget=5000)
    assert CatHubClient("http://localhost:1", api_key="k", requests_per_minute=10).min_interval_s == 6.0


# ----------------------------------------------------------------------------- pubIds are names
@pytest.mark.parametrize("name", ["..", "../x", "a/b", "/etc", ".hidden", "x y"])
def test_pub_id_is_a_name_never_a_path(tmp_path, name):
    from screening.cathub import DatasetCache

    root = tmp_path / "cache" / "root"
    res = runner.invoke(screen_app, ["fetch", "--dataset", name, "--offline", "--cache-dir", str(root)])
    assert res.exit_code == 1 and "invalid dataset name or pubId" in res.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing written anywhere, parent included
    with pytest.raises(ValueError, match="invalid dataset name"):
        DatasetCache(name, root)


# ----------------------------------------------------------------------------- file permissions
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_respect_the_umask(tmp_path, umask):
    from gemnet_helpers import tiny_model

    from calculators.files import atomic_path, atomic_torch_save, atomic_write_json
    from calculators.gemnet import save_checkpoint
    from screening.results import write_run_file

    old = os.umask(umask)
    try:
        files = [
            atomic_write_json(tmp_path / "a.json", {"x": 1}),
            atomic_torch_save({"x": torch.ones(2)}, tmp_path / "b.pt"),
            save_checkpoint(tiny_model(num_blocks=1, quad_interaction=False), tmp_path / "student.pt"),
        ]
        write_run_file(tmp_path / "results.json", {"x": 1})
        files.append(tmp_path / "results.json")
        with atomic_path(tmp_path / "c.extxyz") as tmp:
            tmp.write_text("")
        files.append(tmp_path / "c.extxyz")
    finally:
        os.umask(old)
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_label_chunks_and_energy_caches_respect_the_umask(tmp_path):
    from test_distill_labels import CountingTeacher, _structures

    from distill.labels import LabelSettings, label_structures

    old = os.umask(0o022)
    try:
        label_structures(_structures(2), CountingTeacher(), tmp_path, LabelSettings(chunk_size=2, hessian_rows=0))
    finally:
        os.umask(old)
    for f in [*tmp_path.glob("chunk_*.pt"), tmp_path / "manifest.json"]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_gemnet_checkpoint_with_pickled_code_is_refused_in_one_line(tmp_path):
    """A .pt whose payload would call os.system is refused unread, with a one-line message that does not point
    the user at weights_only=False (torch's own text does)."""
    import os

    from calculators import CheckpointError, DistilledCalculator

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError) as info:
        DistilledCalculator(str(evil), device="cpu")
    message = str(info.value)
    assert "refused unread" in message and "GLOBAL" in message
    assert "\n" not in message and "weights_only=False" not in message.replace(" ", "")
    assert "weights_only` set to `False" not in message
    assert not (tmp_path / "ran").exists()


def test_sevennet_loader_names_a_non_torch_file_as_such(tmp_path):
    """Only a refused pickled object is reported as 'pickled objects'; a JSON file given as a SevenNet checkpoint
    is 'not a readable SevenNet checkpoint' (torch wraps every unpickling error in the same advice)."""
    from calculators.sevennet import SevenNetModel, UnsafeCheckpointError

    bad = tmp_path / "model.pth"
    bad.write_text('{"a": 1}')
    with pytest.raises(UnsafeCheckpointError, match=r"not a readable SevenNet checkpoint \(UnpicklingError") as info:
        SevenNetModel(str(bad))
    assert "pickled objects" not in str(info.value) and "\n" not in str(info.value)
