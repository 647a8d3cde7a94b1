"""Issue 13, broken caches and lost work: truncated energy caches, CatalysisHub cache files and label chunks are
named, quarantined and recomputed; label caches carry per-chunk checksums; `distill train` refuses incomplete
caches and other teachers; one `screen run` per output folder; no stale tables from an earlier run."""

from __future__ import annotations

import fcntl
import json

import pytest
import torch
from test_cathub import PUB, FakeCatHub, _signature, make_client, raw_nodes, server  # noqa: F401 - fixture
from test_distill_labels import CountingTeacher, _structures
from test_screening import FIXTURE, dft_lookup
from typer.testing import CliRunner

import calculators.files as files_module
import distill.labels as labels
import screening.runner as runner_module
from distill.labels import LabelCache, LabelSettings, label_structures
from screening.cathub import DatasetCache, load_dataset
from screening.reactions import from_dataset
from screening.report import write_report
from screening.runner import RunConfig, run_and_report, run_screening

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("pt111", data_file=FIXTURE)


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ----------------------------------------------------------------------------- screening energy caches
def test_truncated_energy_cache_is_named_quarantined_and_recomputed(dataset, tmp_path):
    sset = from_dataset(dataset)
    teacher, student = dft_lookup(dataset), dft_lookup(dataset, "fake-student", {"Hstar": 0.2})
    clean = run_screening(sset, teacher, student, tmp_path, config=RunConfig())
    path = next((tmp_path / "energies").glob("teacher-*.json"))
    _truncate(path)
    calls_before = teacher.calls
    with pytest.warns(
        runner_module.CacheRecoveredWarning, match=rf"{path.name}: not valid JSON .* moved to .*quarantine"
    ):
        again = run_screening(sset, teacher, student, tmp_path, config=RunConfig())
    assert teacher.calls > calls_before and student.calls == 2  # only the broken cache was recomputed
    assert [r["teacher"] for r in again["reactions"]] == [r["teacher"] for r in clean["reactions"]]
    assert again["metrics"] == clean["metrics"]
    assert len(list((tmp_path / "energies" / "quarantine").iterdir())) == 1
    assert any(path.name in note for note in again["recovered_caches"])


# ----------------------------------------------------------------------------- CatalysisHub cache
def test_truncated_cathub_cache_files_are_quarantined_and_refetched(server, tmp_path):  # noqa: F811
    fake = server["fake"] = FakeCatHub(raw_nodes(), page_size=3)
    cache = DatasetCache(PUB, tmp_path)
    cache.fetch_metadata(make_client(server["url"]))
    cache.fetch_structures(make_client(server["url"]))
    full = _signature(load_dataset(PUB, cache_dir=tmp_path))
    system = sorted((cache.path / "systems").glob("*.json"))[3]
    _truncate(system)
    _truncate(cache.path / "pages" / "page_00001.json")
    # offline: no JSONDecodeError; the broken files are named and moved aside, the rest loads
    with pytest.warns(files_module.CacheRecoveredWarning) as caught:
        partial = load_dataset(PUB, cache_dir=tmp_path)
    named = " ".join(str(w.message) for w in caught)
    assert f"{system}: not valid JSON" in named and "page_00001.json: not valid JSON" in named
    assert partial.counts["reactions"] < 7
    quarantined = sorted(p.name for p in tmp_path.rglob("quarantine/*"))
    assert any(q.startswith(system.name) for q in quarantined) and any(q.startswith("page_00001") for q in quarantined)
    assert not (cache.path / "pages" / "page_00002.json").exists()  # later pages chain on its cursor: refetched
    n = len(fake.log)
    load_dataset(PUB, cache_dir=tmp_path, allow_network=True, client=make_client(server["url"]))
    new = fake.log[n:]
    assert sum(e["kind"] == "systems" for e in new) == 1  # only the broken structure
    assert sum(e["kind"] == "reactions" for e in new) == 2  # pages 1 and 2
    assert _signature(load_dataset(PUB, cache_dir=tmp_path)) == full


def test_truncated_cathub_state_file_is_rebuilt(server, tmp_path):  # noqa: F811
    server["fake"] = FakeCatHub(raw_nodes(), page_size=3)
    cache = DatasetCache(PUB, tmp_path)
    cache.fetch_metadata(make_client(server["url"]))
    _truncate(cache.path / "state.json", 0.3)
    status = cache.status()
    assert status.reactions == 7 and not status.metadata_complete
    assert cache.fetch_metadata(make_client(server["url"])).metadata_complete


# ----------------------------------------------------------------------------- one run per folder, no stale files
def test_second_screen_run_into_the_same_folder_is_refused(dataset, tmp_path):
    sset = from_dataset(dataset)
    teacher = dft_lookup(dataset)
    lock = tmp_path / ".lock"
    with open(lock, "a+") as other:  # another process holding the folder's lock
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.write("pid 12345")
        other.flush()
        with pytest.raises(files_module.LockedError, match="another screening run is already writing into .*pid 12345"):
            run_screening(sset, teacher, None, tmp_path)
        assert teacher.calls == 0 and not (tmp_path / "results.json").exists()
        from screening.cli import app

        res = runner.invoke(app, ["run", "--data-file", str(FIXTURE), "--out", str(tmp_path), "--student", "none"])
        assert res.exit_code == 2 and "already writing into" in res.output
    run_screening(sset, teacher, None, tmp_path)  # released: the next run goes ahead


def test_stale_anomaly_tables_are_removed_by_a_new_run(dataset, tmp_path):
    for ext in ("csv", "md"):  # left by an earlier relax run into the same folder
        (tmp_path / f"anomalies.{ext}").write_text("model,class,reactions\nteacher,not converged,3\n")
        (tmp_path / f"funnel.{ext}").write_text("stale")
    run_and_report(from_dataset(dataset), dft_lookup(dataset), None, tmp_path)
    assert not (tmp_path / "anomalies.csv").exists() and not (tmp_path / "anomalies.md").exists()
    assert not (tmp_path / "funnel.csv").exists()
    assert "Relaxation anomalies" not in (tmp_path / "summary.md").read_text()
    write_report(tmp_path)  # regenerating keeps it that way
    assert not (tmp_path / "anomalies.csv").exists()


# ----------------------------------------------------------------------------- label caches
SETTINGS = LabelSettings(chunk_size=2, hessian_rows=1)


def _records_equal(a, b) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert torch.equal(ra[k], rb[k]), k


def test_label_manifest_has_chunk_checksums_and_a_truncated_chunk_is_relabelled(tmp_path):
    structures = _structures(5)
    teacher = CountingTeacher()
    cache = label_structures(structures, teacher, tmp_path, SETTINGS)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(manifest["chunks"]) == ["00000", "00001", "00002"]
    assert all(len(c["sha256"]) == 64 for c in manifest["chunks"].values())
    clean = cache.records()
    _truncate(cache.chunk_path(1), 0.9)
    with pytest.raises(labels.CorruptCacheError, match="chunk_00001.pt: sha256 .* does not match"):
        LabelCache(tmp_path).records()
    assert not LabelCache(tmp_path).complete
    labelled = teacher.labelled
    with pytest.warns(labels.CacheRepairedWarning, match="chunk_00001.pt"):
        again = label_structures(structures, teacher, tmp_path, SETTINGS)
    assert teacher.labelled == labelled + 2  # only that chunk's two structures
    assert [k for k, _, _ in again.repaired] == [1] and again.repaired[0][2].parent.name == "quarantine"
    _records_equal(again.records(), clean)


def test_legacy_cache_without_checksums_is_read_and_checked_by_loading(tmp_path):
    structures = _structures(4)
    teacher = CountingTeacher()
    clean = label_structures(structures, teacher, tmp_path, SETTINGS).records()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["chunks"]  # the format written before checksums (caches being written by older code)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    _records_equal(LabelCache(tmp_path).records(), clean)
    _truncate(LabelCache(tmp_path).chunk_path(0))
    with pytest.raises(labels.CorruptCacheError, match="chunk_00000.pt: cannot be loaded"):
        LabelCache(tmp_path).records()
    with pytest.warns(labels.CacheRepairedWarning):
        label_structures(structures, teacher, tmp_path, SETTINGS)
    assert teacher.labelled == 4 + 2
    _records_equal(LabelCache(tmp_path).records(), clean)
    assert sorted(json.loads((tmp_path / "manifest.json").read_text())["chunks"]) == ["00000", "00001"]


def test_incomplete_label_cache_is_refused(tmp_path):
    def stop(k):
        if k == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_structures(_structures(5), CountingTeacher(), tmp_path, SETTINGS, on_chunk=stop)
    with pytest.raises(labels.IncompleteCacheError, match=r"1 of 3 chunks .*missing: 1-2"):
        LabelCache(tmp_path).records()
    assert len(LabelCache(tmp_path).records(allow_incomplete=True)) == 2


@pytest.fixture(scope="module")
def two_teachers(tmp_path_factory):
    """Label caches of the same 5 structures by two teachers (one interrupted), and a recipe for 2 steps."""
    from test_distill_train import SMALL

    d = tmp_path_factory.mktemp("two-teachers")
    structures = _structures(5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        label_structures(structures, CountingTeacher(0), d / "a", SETTINGS)
        label_structures(structures[:4], CountingTeacher(1), d / "b", SETTINGS)

        def stop(k):
            if k == 0:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            label_structures(structures, CountingTeacher(0), d / "partial", SETTINGS, on_chunk=stop)
    finally:
        torch.set_num_threads(threads)
    recipe = {"student_overrides": SMALL, "max_steps": 2, "warmup_steps": 1, "batch_size": 2, "eval_every": 1,
              "checkpoint_every": 1, "progress": False, "scale_fit_batches": 0}  # fmt: skip
    (d / "recipe.json").write_text(json.dumps(recipe))
    return d


def test_train_refuses_incomplete_caches_and_other_teachers(two_teachers, tmp_path):
    from distill.cli import app

    d = two_teachers
    train = ["train", "--config", str(d / "recipe.json")]
    res = runner.invoke(app, [*train, str(d / "partial"), "-o", str(tmp_path / "p")])
    assert res.exit_code == 2 and "incomplete: 1 of 3 chunks" in res.output and not (tmp_path / "p").exists()
    res = runner.invoke(app, [*train, str(d / "a"), "--val-cache", str(d / "b"), "-o", str(tmp_path / "v")])
    assert res.exit_code == 2 and "a student learns from one teacher" in res.output
    res = runner.invoke(app, [*train, str(d / "a"), str(d / "b"), "-o", str(tmp_path / "m")])
    assert res.exit_code == 2 and "a student learns from one teacher" in res.output
    # resuming a run with another teacher's labels would rewrite the teacher in the student's metadata
    res = runner.invoke(app, [*train, str(d / "a"), "-o", str(tmp_path / "r"), "--max-steps", "1"])
    assert res.exit_code == 0, res.output
    meta = torch.load(tmp_path / "r" / "student.pt", weights_only=True)["metadata"]
    res = runner.invoke(app, [*train, str(d / "b"), "-o", str(tmp_path / "r"), "--max-steps", "1"])
    assert res.exit_code == 2 and "Resuming would mix teachers" in res.output
    after = torch.load(tmp_path / "r" / "student.pt", weights_only=True)["metadata"]
    assert after["teacher"] == meta["teacher"]
