"""Trainer: loss goes down, checkpoints are plain dicts with the recipe, a killed run resumes exactly."""

from __future__ import annotations

import pytest
import torch
from gemnet_helpers import pt_slab_o
from test_distill_labels import CountingTeacher

from calculators.gemnet.checkpoint import load_project_checkpoint
from distill.labels import LabelSettings, label_structures
from distill.losses import LossConfig
from distill.train import TrainConfig, learning_rate, path_key, split_records, train

SMALL = dict(
    num_spherical=3, num_radial=6, num_blocks=1, emb_size_atom=8, emb_size_edge=8, emb_size_trip_in=4,
    emb_size_trip_out=4, emb_size_rbf=4, emb_size_cbf=4, emb_size_sbf=4, num_atom=1, num_output_afteratom=1,
    num_atom_emb_layers=0, num_global_out_layers=1, cutoff=4.0, max_neighbors=8,
)  # fmt: skip


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels")
    structures = [pt_slab_o(size=(1, 1, 2), seed=i) for i in range(6)]
    for i, atoms in enumerate(structures):  # fake DFT targets for the hard stage
        atoms.info["dft_energy"] = -10.0 - i
        atoms.arrays["dft_forces"] = 0.1 * atoms.positions
    return label_structures(structures, CountingTeacher(), path, LabelSettings(chunk_size=3, hessian_rows=1)).records()


def _config(**kw):
    losses = LossConfig(fork=1.0, n2n=1.0, hessian=0.1, atomic=0.1, fork_max_edges=16)
    base = dict(
        student_overrides=SMALL, losses=losses, max_steps=6, warmup_steps=2, batch_size=2, eval_every=3,
        checkpoint_every=2, val_fraction=0.2, progress=False,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_learning_rate_schedule():
    c = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.0, finetune_steps=10, finetune_lr=0.5)
    assert learning_rate(0, c) == pytest.approx(0.1)
    assert learning_rate(9, c) == pytest.approx(1.0)
    assert learning_rate(60, c) == pytest.approx(0.5)
    assert learning_rate(110, c) == pytest.approx(0.5)


def test_train_writes_checkpoint_with_recipe_and_log(tmp_path, records):
    result = train(_config(finetune_steps=2), records, tmp_path)
    assert result["steps"] == 8  # 6 soft + 2 hard (the records carry DFT targets)
    ckpt = torch.load(tmp_path / "student.pt", weights_only=True)
    assert ckpt["metadata"]["recipe"]["losses"]["fork"] == 1.0
    model, meta = load_project_checkpoint(tmp_path / "student.pt")
    assert "force_mae" in meta["validation"]
    torch.load(tmp_path / "state.pt", weights_only=True)
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,stage,lr") and len(log) == 9 and "hard" in log[-1]


def test_killed_training_resumes_to_the_same_weights(tmp_path, records):
    full = train(_config(), records, tmp_path / "full")

    def kill(step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(), records, tmp_path / "resumed", on_step=kill)
    resumed = train(_config(), records, tmp_path / "resumed")
    assert resumed["steps"] == full["steps"] == 6
    a = torch.load(tmp_path / "full" / "student.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "student.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    with pytest.raises(ValueError, match=r"another recipe \(lr: 0\.\d+ saved, 0\.005 now\)"):
        train(_config(lr=5e-3), records, tmp_path / "resumed")


def test_run_from_a_widened_checkpoint_records_its_lineage(tmp_path, records):
    from distill.widen import widen_checkpoint

    base = tmp_path / "base"
    train(_config(max_steps=2, losses=LossConfig()), records, base)
    assert "started_from" not in load_project_checkpoint(base / "student.pt")[1]  # a fresh preset: no lineage
    widen_checkpoint(base / "student.pt", tmp_path / "wide.pt", emb_size_atom=12, emb_size_edge=12)

    def kill(step):
        if step == 2:  # after the checkpoint of step 2
            raise KeyboardInterrupt

    cfg = _config(student=str(tmp_path / "wide.pt"), max_steps=4, losses=LossConfig())
    with pytest.raises(KeyboardInterrupt):
        train(cfg, records, tmp_path / "fine", on_step=kill)
    saved = torch.load(tmp_path / "fine" / "state.pt", weights_only=True)["started_from"]
    assert saved["widened_from"]["emb_size_atom"] == 8  # the resumed run takes the lineage from its saved state
    train(cfg, records, tmp_path / "fine")
    start = load_project_checkpoint(tmp_path / "fine" / "student.pt")[1]["started_from"]
    assert start["path"] == str(tmp_path / "wide.pt") and len(start["sha256"]) == 64
    assert start["widened_from"]["emb_size_atom"] == 8 and start["widened_from"]["source"] == str(base / "student.pt")


def test_training_reduces_the_loss(tmp_path, records):
    cfg = _config(losses=LossConfig(), max_steps=14, warmup_steps=1, lr=1e-2, eval_every=100, checkpoint_every=100)
    train(cfg, records, tmp_path)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("total")
    first = sum(float(r.split(",")[col]) for r in rows[1:4]) / 3
    last = sum(float(r.split(",")[col]) for r in rows[-3:]) / 3
    assert last < first


def _path_records(n_paths: int, per_path: int, first: int = 0) -> list[dict]:
    """Fake records: `per_path` snapshots per path, each path its own cell (a strain), positions differ."""
    out = []
    for p in range(first, first + n_paths):
        cell = torch.eye(3, dtype=torch.float64) * (5.0 + 0.013 * p)
        for _ in range(per_path):
            out.append(
                {
                    "numbers": torch.tensor([78, 78, 8]),
                    "cell": cell.clone(),
                    "positions": torch.rand(3, 3, dtype=torch.float64),
                    "path": torch.tensor(p),
                }
            )
    return out


def test_path_split_keeps_each_trajectory_on_one_side():
    records = _path_records(n_paths=40, per_path=7)
    train_recs, val_recs = split_records(records, 0.1, seed=3, by="path")
    assert len(train_recs) + len(val_recs) == len(records)
    val_paths = {int(r["path"]) for r in val_recs}
    assert val_paths and val_paths.isdisjoint({int(r["path"]) for r in train_recs})
    assert 28 <= len(val_recs) <= 28 + 7  # whole paths, just past 10 %
    # the per-record split of the same records straddles paths (what the path split exists to prevent)
    tr, va = split_records(records, 0.1, seed=3, by="record")
    assert {int(r["path"]) for r in va} & {int(r["path"]) for r in tr}
    assert split_records(records, 0.1, seed=3, by="path")[1] == val_recs  # reproducible


def test_path_split_falls_back_when_one_path_holds_everything():
    records = _path_records(n_paths=1, per_path=10)
    train_recs, val_recs = split_records(records, 0.2, seed=0, by="path")
    assert len(val_recs) == 2 and len(train_recs) == 8
    with pytest.raises(ValueError, match="unknown validation split"):
        split_records(records, 0.2, seed=0, by="trajectory")


def test_path_hash_split_keeps_paths_on_their_side_when_caches_grow():
    """Fine-tuning rounds add caches: with "path-hash" (the default) a path validated before stays in validation
    and a path trained on stays in training; the seeded-draw "path" split reshuffles them."""
    assert TrainConfig().val_split == "path-hash"
    records = _path_records(n_paths=200, per_path=3)
    grown = records + _path_records(n_paths=400, per_path=3, first=200)

    def sides(recs, by):
        tr, va = split_records(recs, 0.1, seed=3, by=by)
        assert {int(r["path"]) for r in va}.isdisjoint({int(r["path"]) for r in tr if int(r["path"]) < 200})
        return {path_key(r) for r in va}, {path_key(r) for r in tr}

    val0, train0 = sides(records, "path-hash")
    val1, train1 = sides(grown, "path-hash")
    assert val0 <= val1 and train0 <= train1  # nothing crossed the split
    assert 0.03 < len(val0) / 200 < 0.17 and 0.05 < len(val1) / 600 < 0.15  # binomial around 10 %
    old_val0, _ = sides(records, "path")
    old_val1, old_train1 = sides(grown, "path")
    assert old_val0 & old_train1  # the seeded draw moved validation paths into training
    one = _path_records(n_paths=1, per_path=10)
    tr, va = split_records(one, 0.2, seed=0, by="path-hash")
    assert len(va) == 2 and len(tr) == 8  # one path: the record split


def test_a_diverging_run_stops_without_writing_a_student(tmp_path, records, monkeypatch):
    """A non-finite loss stops the run at that step: the update is not applied, no student.pt is written, and
    state.pt keeps the last finite state (a NaN student once trained on silently and was saved)."""
    import distill.train as T

    built, models = T.build_student, []
    monkeypatch.setattr(T, "build_student", lambda *a, **k: models.append(built(*a, **k)) or models[-1])

    def poison(step):
        if step == 2:  # after step 2's state was saved: the next forward pass is NaN
            with torch.no_grad():
                next(p for n, p in models[0].named_parameters() if "weight" in n).fill_(float("nan"))

    with pytest.raises(T.NonFiniteTrainingError, match=r"diverged at step 3: non-finite loss.*keeps step 2"):
        train(_config(losses=LossConfig(), checkpoint_every=2), records, tmp_path, on_step=poison)
    assert not (tmp_path / "student.pt").exists()
    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    assert saved["progress"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": 0}, r"batch_size must be an integer ≥ 1, got 0"),
        ({"lr": "fast"}, r"lr must be a finite number > 0, got 'fast'"),
        ({"max_steps": -5}, r"max_steps must be an integer ≥ 1"),
        ({"dtype": "float16"}, r"dtype must be one of 'float32', 'float64'"),
        ({"device": "tpu"}, r"device 'tpu' is not a torch device"),
        ({"losses": {"forces": -1}}, r"loss settings: forces must be a finite number ≥ 0"),
        ({"losses": {"forces": "NaN"}}, r"loss settings: forces must be a finite number ≥ 0, got 'NaN'"),
        ({"losses": {"force_kind": "l1"}}, r"force_kind must be one of"),
        ({"val_split": "random"}, r"val_split must be one of"),
        ({"losses": [1, 2]}, r"losses must be a mapping"),
    ],
)
def test_recipe_values_are_checked_in_one_line(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values)


def test_recipe_numbers_written_as_strings_are_read():
    """YAML reads 1e-3 (no dot) as a string: it is taken as the number it spells."""
    c = TrainConfig.from_dict({"lr": "1e-3", "max_steps": "20", "losses": {"energy": "40"}})
    assert c.lr == 1e-3 and c.max_steps == 20 and c.losses.energy == 40.0


def test_a_damaged_state_file_is_named_and_kept(tmp_path, records):
    (tmp_path / "state.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match=r"cannot resume: .*state\.pt is .*--no-resume"):
        train(_config(), records, tmp_path)
    assert (tmp_path / "state.pt").read_bytes() == b"PK\x03\x04 cut short"


def test_a_state_saved_before_a_new_setting_existed_resumes(tmp_path, records):
    """A recipe setting added later (e.g. a new loss weight) is filled with its default in a saved state, so a
    run started before it resumes under the same recipe instead of being refused as 'another recipe'."""

    def stop(step):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(max_steps=4, checkpoint_every=2), records, tmp_path, on_step=stop)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    del state["config"]["losses"]["energy_gradient"]  # as written before that term existed
    torch.save(state, tmp_path / "state.pt")
    assert train(_config(max_steps=4, checkpoint_every=2), records, tmp_path)["steps"] == 4
