"""Dask executor (issue 14): a LocalCluster of 2 worker processes gives the in-process results for screening and
labelling; a worker killed mid-run changes nothing; a killed client resumes from the caches without repeating a
model call; the model is loaded once per worker; the CLI takes --scheduler."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch
from gemnet_helpers import pt_slab_o, tiny_model
from typer.testing import CliRunner

from calculators.distributed import dask_executor, load_counts
from calculators.gemnet import save_checkpoint

pytest.importorskip("distributed")

CHEAP = dict(
    direct_forces=False, num_blocks=1, quad_interaction=False, atom_edge_interaction=False,
    edge_atom_interaction=False, atom_interaction=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    with dask_executor(workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask-models")
    t = save_checkpoint(tiny_model(seed=0, dtype=torch.float32, **CHEAP), d / "teacher.pt")
    s = save_checkpoint(tiny_model(seed=1, dtype=torch.float32, **CHEAP), d / "student.pt")
    return str(t), str(s)


@pytest.fixture(scope="module")
def screen_set():
    from screening.reactions import generated_set

    return generated_set(["Pt", "Cu"], 8, seed=0, prototypes=("fcc",), facets=("111",))


def _screen(models, screen_set, run_dir, executor=None, batch_atoms=40, store_hook=None):
    """Energies of every system of `screen_set` with teacher and student (fresh evaluators), cached in run_dir."""
    from screening.evaluators import resolve_models
    from screening.runner import EnergyStore, evaluate_systems

    t, s, _ = resolve_models(*models)
    out, stores = {}, {}
    keys = list(screen_set.atoms)
    for role, ev in (("teacher", t), ("student", s)):
        store = EnergyStore(run_dir, role, ev, "single-point")
        if store_hook is not None:
            store_hook(store)
        out[role] = evaluate_systems(
            ev, screen_set.atoms, keys, store, batch_atoms=batch_atoms, gas_keys=screen_set.gas_keys,
            executor=executor, progress=False,
        )  # fmt: skip
        stores[role] = store
    return out, stores


@pytest.fixture(scope="module")
def in_process(models, screen_set, tmp_path_factory):
    return _screen(models, screen_set, tmp_path_factory.mktemp("inproc"))[0]


def _same(a, b):
    for role in a:
        assert a[role].keys() == b[role].keys()
        for k in a[role]:
            assert a[role][k] == pytest.approx(b[role][k], rel=1e-6, abs=1e-6), (role, k)


def test_screening_on_two_workers_equals_in_process(cluster, models, screen_set, in_process, tmp_path):
    assert cluster.workers == 2
    got, stores = _screen(models, screen_set, tmp_path, cluster)
    _same(in_process, got)
    run = stores["teacher"].data["runs"][-1]
    assert run["executor"] == "dask" and run["workers"] == 2 and run["structures"] == len(screen_set.atoms)
    # each model loaded at most once per worker, whatever the number of tasks
    assert len(stores["teacher"].data["batches"]) > 2
    for counts in cluster.client.run(load_counts).values():
        assert all(v == 1 for v in counts.values()), counts
    from screening.runner import timing_summary

    summary = timing_summary(stores["student"])
    assert summary["workers"] == 2 and summary["structures_per_s"] > 0


def test_worker_killed_mid_run_does_not_change_results(cluster, models, screen_set, in_process, tmp_path):
    killed = []

    def hook(store):
        save = store.save

        def save_and_kill():
            save()
            if not killed:  # after the first task came back: kill a worker that may hold others
                pid = sorted(cluster.worker_pids().values())[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        store.save = save_and_kill

    got, stores = _screen(models, screen_set, tmp_path, cluster, batch_atoms=20, store_hook=hook)
    assert killed
    _same(in_process, got)
    assert not stores["teacher"].errors and not stores["student"].errors
    for store in stores.values():  # every structure evaluated exactly once
        assert sum(b["structures"] for b in store.data["batches"]) == len(store.entries)
    cluster.client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_killed_client_resumes_without_repeating_model_calls(cluster, models, screen_set, in_process, tmp_path):
    saves = []

    def hook(store):
        save = store.save

        def save_then_die():
            save()
            saves.append(1)
            if len(saves) == 2:
                raise KeyboardInterrupt  # the client dies after two tasks were written

        store.save = save_then_die

    with pytest.raises(KeyboardInterrupt):
        _screen(models, screen_set, tmp_path, cluster, batch_atoms=20, store_hook=hook)
    got, stores = _screen(models, screen_set, tmp_path, cluster, batch_atoms=20)
    _same(in_process, got)
    t = stores["teacher"].data
    (restart,) = t["runs"]  # the killed run recorded no run, only its two batches
    assert 0 < restart["structures"] < len(screen_set.atoms)  # the restart computed only what was not written
    assert sum(b["structures"] for b in t["batches"]) == len(screen_set.atoms)  # nothing evaluated twice


def test_labelling_on_two_workers_and_resume(cluster, models, tmp_path):
    from calculators.loading import load_model
    from distill.labels import LabelCache, LabelSettings, label_structures

    structures = [pt_slab_o(size=(1, 1, 2), seed=i) for i in range(6)]
    settings = LabelSettings(chunk_size=2, hessian_rows=1)
    teacher = load_model(models[0])
    ref = label_structures(structures, teacher, tmp_path / "ref", settings, teacher_name=models[0]).records()
    written = []

    def die_after_one(k):
        written.append(k)
        if len(written) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_structures(structures, teacher, tmp_path / "d", settings, teacher_name=models[0], executor=cluster,
                         on_chunk=die_after_one)  # fmt: skip
    assert len(LabelCache(tmp_path / "d").done_chunks()) == 1
    again = []
    cache = label_structures(structures, teacher, tmp_path / "d", settings, teacher_name=models[0],
                             executor=cluster, on_chunk=again.append)  # fmt: skip
    assert sorted(again + written) == [0, 1, 2]  # no chunk labelled twice
    got = cache.records()
    assert len(got) == len(ref)
    for a, b in zip(ref, got, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5)


def test_screen_run_cli_on_a_scheduler(cluster, models, tmp_path):
    from screening.cli import app

    runner = CliRunner()
    args = ["run", "--teacher", models[0], "--student", models[1], "--limit", "2", "--out", str(tmp_path / "r")]
    res = runner.invoke(app, [*args, "--scheduler", cluster.address])
    assert res.exit_code == 0, res.output
    assert "2 worker(s)" in res.output
    speed = (tmp_path / "r" / "speed.md").read_text()
    assert "structures_per_s" in speed and "2 (dask)" in speed
    bad = runner.invoke(app, [*args, "--scheduler", cluster.address, "--workers", "2"])
    assert bad.exit_code == 2 and "not both" in bad.output


def test_relax_reaction_funnel_on_workers_resumes_from_relaxed_slabs(cluster, models, tmp_path):
    """Relax-mode reaction funnel on 2 workers: adslabs start from the model's relaxed slab (cached with its
    positions and wall time), and a run killed after the slabs resumes without relaxing a slab again and with the
    same ΔE as an uninterrupted run."""
    from calculators.distributed import using
    from screening.descriptors import load_table, parse_stages
    from screening.descriptors.surfaces import generate_candidates
    from screening.evaluators import resolve_models
    from screening.reaction_funnel import run_reaction_funnel
    from screening.runner import RunConfig

    table = load_table()
    orr = table.reaction("orr")
    cs = generate_candidates(orr, table, ["Pt", "Cu"], 2, sites=1, prototypes=("fcc",), facets=("111",))
    cfg = RunConfig(mode="relax", fmax=0.05, max_steps=3, batch_atoms=30)
    stages = parse_stages("student:-100,teacher:-100")

    def funnel(run_dir):
        t, s, _ = resolve_models(*models)
        with using(cluster):
            return run_reaction_funnel(cs, orr, table, t, s, run_dir, stages=stages, config=cfg)

    full = funnel(tmp_path / "full")
    store_file = next((tmp_path / "full" / "energies").glob("teacher-relax-*.json"))
    entries = json.loads(store_file.read_text())["entries"]
    slab_keys = {c.slab_key for s in cs.surfaces for c in s.candidates}
    unrelaxed = {c.adslab_key for s in cs.surfaces for c in s.candidates}
    assert slab_keys <= set(entries) and not unrelaxed & set(entries)  # adslabs started from relaxed slabs
    assert all(e["seconds"] > 0 and "positions" in e for e in entries.values())  # measured on the workers
    assert full["compute"]["teacher_all_measured"] and full["compute"]["teacher_all_seconds"] > 0

    # "killed" after the slabs: keep only the slab and gas entries, then run again
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full" / "energies", part / "energies")
    for f in (part / "energies").glob("*-relax-*.json"):
        data = json.loads(f.read_text())
        data["entries"] = {k: e for k, e in data["entries"].items() if e["gas"] or k in slab_keys}
        f.write_text(json.dumps(data))
    n_runs = len(json.loads(next((part / "energies").glob("teacher-relax-*.json")).read_text())["runs"])
    resumed = funnel(part)
    after = json.loads(next((part / "energies").glob("teacher-relax-*.json")).read_text())
    assert set(after["entries"]) == set(entries)  # the same adslab starts (keys) as the uninterrupted run
    recomputed = sum(r["structures"] for r in after["runs"][n_runs:])
    assert recomputed == len(entries) - len(slab_keys) - sum(e["gas"] for e in entries.values())  # adslabs only
    for a, b in zip(full["surfaces"], resumed["surfaces"], strict=True):
        for role in ("student", "teacher"):
            assert a["models"][role]["U_L"] == pytest.approx(b["models"][role]["U_L"], abs=1e-6)
