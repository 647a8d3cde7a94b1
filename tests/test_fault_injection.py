"""Issue 13, fault injection: `screen run` and `distill label` are killed at random points (in-process hooks that
raise where a kill could land, and a real SIGKILL of a `distill label` process), one cache file is corrupted, and
the resumed results must equal a clean run's."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from gemnet_helpers import tiny_model
from test_caches import _records_equal, _truncate
from test_distill_labels import CountingTeacher, _structures

import calculators.files
import distill.labels
from distill.labels import LabelCache, LabelSettings, label_structures
from screening.evaluators import model_evaluator
from screening.reactions import builtin_set
from screening.runner import RunConfig, run_and_report, run_screening

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
CHEAP = dict(
    num_blocks=1, quad_interaction=False, atom_edge_interaction=False, edge_atom_interaction=False,
    atom_interaction=False,
)  # fmt: skip


class Killed(BaseException):
    """Stands for a kill: not an Exception, so no handler in the code under test can swallow it."""


class KillAt:
    """Raises `Killed` on its n-th call (counting from 1), then never again."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self.n:
            raise Killed(f"killed at call {self.n}")


# ----------------------------------------------------------------------------- screen run
@pytest.fixture(scope="module")
def models():
    return tiny_model(**CHEAP), tiny_model(seed=1, **CHEAP)  # float64: batch composition changes nothing


def _screen_set():
    return builtin_set(surfaces=[("Pt", "fcc", "111")], adsorbates=["H", "O"], layers=2)  # 5 systems


def _evaluators(models, kill: KillAt | None = None, kill_role: str = "teacher"):
    evs = []
    for role, model in zip(("teacher", "student"), models, strict=True):
        ev = model_evaluator(model, role, {"kind": "tiny"}, name=f"tiny-{role}")
        if kill is not None and role == kill_role:
            inner = ev.energy_fn
            ev.energy_fn = lambda al, inner=inner: (kill(), inner(al))[1]
        evs.append(ev)
    return evs


def _screen(models, out: Path, kill: KillAt | None = None, kill_role: str = "teacher", report: bool = True) -> dict:
    """`screen run` (`run_and_report`) with batches of one structure, so that kills land between batches."""
    t, s = _evaluators(models, kill, kill_role)
    run = run_and_report if report else run_screening
    return run(_screen_set(), t, s, out, config=RunConfig(batch_atoms=10))


def _comparable(results: dict) -> dict:
    """What must not depend on kills and resumes: every reaction's numbers and every metric."""
    return {"reactions": results["reactions"], "metrics": results["metrics"], "skipped": results["dataset"]["skipped"]}


def test_screen_run_killed_at_random_points_resumes_to_the_clean_result(models, tmp_path, monkeypatch):
    clean = _comparable(_screen(models, tmp_path / "clean", report=False))
    rng = random.Random(13)
    out = tmp_path / "killed"
    kills, corrupted = 0, False
    replace = os.replace
    for _ in range(10):
        role = rng.choice(["teacher", "student", "write"])
        kill = KillAt(rng.randint(1, 3))
        if role == "write":  # a kill between writing a cache file and moving it into place
            monkeypatch.setattr(calculators.files.os, "replace", lambda a, b, kill=kill: (kill(), replace(a, b))[1])
        try:
            result = _screen(models, out, None if role == "write" else kill, role)
        except Killed:
            kills += 1
            caches = sorted((out / "energies").glob("*.json"))
            if kills >= 2 and caches and not corrupted:  # and one cache file is corrupted (a full disk, an edit)
                _truncate(caches[rng.randrange(len(caches))], 0.4)
                corrupted = True
            continue
        finally:
            monkeypatch.setattr(calculators.files.os, "replace", replace)
        break
    else:
        pytest.fail("never finished")
    assert kills >= 2 and corrupted, (kills, corrupted)
    assert len(list((out / "energies" / "quarantine").iterdir())) == 1  # the corrupted cache, moved aside
    assert _equal(_comparable(result), clean)
    assert not list(out.rglob("*.tmp"))  # temporary files of killed writes are removed
    assert json.loads((out / "results.json").read_text())["metrics"]["all"]["n"] == 2


def _equal(a, b, tol: float = 1e-9) -> bool:
    """Deep equality with float tolerance (batches differ between a resumed and a clean run)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), (a.keys(), b.keys())
        return all(_equal(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        assert len(a) == len(b)
        return all(_equal(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=tol, nan_ok=True), (a, b)
        return True
    assert a == b, (a, b)
    return True


# ----------------------------------------------------------------------------- distill label (in-process)
SETTINGS = LabelSettings(chunk_size=2, hessian_rows=1)


class KillableTeacher(CountingTeacher):
    def __init__(self, kill: KillAt | None = None) -> None:
        super().__init__()
        self.kill = kill

    def predict(self, batch, *, forces=True, features=False, **kw):
        if self.kill is not None:
            self.kill()  # a kill in the middle of a chunk
        return super().predict(batch, forces=forces, features=features, **kw)


def test_distill_label_killed_at_random_points_resumes_to_the_clean_labels(tmp_path, monkeypatch):
    structures = _structures(7)
    clean = label_structures(structures, CountingTeacher(), tmp_path / "clean", SETTINGS).records()
    rng = random.Random(7)
    cache = tmp_path / "killed"
    kills, corrupted = 0, False
    entry = distill.labels._chunk_entry
    replace = os.replace
    for _ in range(15):
        where = rng.choice(["predict", "after-chunk-file", "write"])
        kill = KillAt(rng.randint(1, 3))
        if where == "after-chunk-file":  # chunk on disk, its checksum not yet in the manifest
            monkeypatch.setattr(distill.labels, "_chunk_entry", lambda p, n, kill=kill: (kill(), entry(p, n))[1])
        if where == "write":
            monkeypatch.setattr(calculators.files.os, "replace", lambda a, b, kill=kill: (kill(), replace(a, b))[1])
        try:
            label_structures(structures, KillableTeacher(kill if where == "predict" else None), cache, SETTINGS)
        except Killed:
            kills += 1
            done = LabelCache(cache).done_chunks() if (cache / "manifest.json").is_file() else []
            if kills >= 2 and done and not corrupted:  # corrupt one chunk on disk
                _truncate(LabelCache(cache).chunk_path(rng.choice(done)), 0.7)
                corrupted = True
            continue
        finally:
            monkeypatch.setattr(distill.labels, "_chunk_entry", entry)
            monkeypatch.setattr(calculators.files.os, "replace", replace)
        break
    else:
        pytest.fail("never finished")
    assert kills >= 2 and corrupted, (kills, corrupted)
    assert len(list((cache / "quarantine").iterdir())) == 1  # the corrupted chunk, moved aside and relabelled
    _records_equal(LabelCache(cache).records(), clean)
    assert LabelCache(cache).complete and not list(cache.glob("*.tmp")) and not list(cache.glob(".*.tmp"))


# ----------------------------------------------------------------------------- distill label (SIGKILL)
def test_distill_label_process_killed_with_sigkill_resumes(tmp_path):
    """A real kill -9 of `distill label` at a random moment, a corrupted chunk, then a resumed run."""
    from test_distill_labels import CHEAP as LABEL_CHEAP

    from calculators.gemnet.checkpoint import save_checkpoint
    from calculators.loading import load_model
    from screening.structures import read_structures, write_structures

    save_checkpoint(tiny_model(dtype=torch.float32, **LABEL_CHEAP), tmp_path / "teacher.pt")
    write_structures(tmp_path / "s.extxyz", _structures(6))
    cmd = [sys.executable, "-c", "from distill.cli import app; app()", "label", str(tmp_path / "s.extxyz"), "-c",
           str(tmp_path / "c"), "--teacher", str(tmp_path / "teacher.pt"), "--chunk-size", "2", "--hessian-rows",
           "1", "--threads", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    chunks = []
    delay = random.Random(3).uniform(0.0, 1.0)
    while time.time() < deadline and proc.poll() is None:  # kill once a chunk is written, at a random moment
        chunks = sorted((tmp_path / "c").glob("chunk_*.pt")) if (tmp_path / "c").is_dir() else []
        if chunks:
            time.sleep(delay)
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = LabelCache(tmp_path / "c").done_chunks()
    if done:
        _truncate(LabelCache(tmp_path / "c").chunk_path(done[0]), 0.6)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert LabelCache(tmp_path / "c").complete
    # the same labels computed here in one go (the command's settings: fd Hessian rows)
    settings = LabelSettings(chunk_size=2, hessian_rows=1, hessian_method="fd")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command ran: the same summation order
    try:
        ref = label_structures(read_structures(tmp_path / "s.extxyz"), load_model(tmp_path / "teacher.pt"),
                               tmp_path / "ref", settings).records()  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    got = LabelCache(tmp_path / "c").records()
    assert len(got) == len(ref) == 6
    for a, b in zip(got, ref, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
