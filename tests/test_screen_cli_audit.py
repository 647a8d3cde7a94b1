"""`screen` CLI defects found by an audit, one test (or a few) each: the funnel on metadata-only data, duplicate
generated candidates, a data file of another publication, options a funnel would ignore and stage orders that make
no sense, an --out folder of another command, legends over data, columns without units, wrong-shaped run files,
quotes lost from messages, absurd strains, and --limit / empty file / default-lattice reporting."""

from __future__ import annotations

import csv
import json
import math
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_cli_errors import NO_MODEL, _refused
from test_screening import dft_lookup
from typer.testing import CliRunner

from calculators.cli.common import error_text
from calculators.hashing import structure_key
from screening.cathub import DatasetMismatchError, load_dataset
from screening.cli import app as screen_app
from screening.cli.options import MAX_STRAIN_PERCENT, parse_strains
from screening.descriptors import parse_stages
from screening.reactions import builtin_set, candidate_identity, from_dataset, generated_set
from screening.results import check_run_kind, run_kind

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cathub" / "pt111_raw.json"
runner = CliRunner()


def _invoke(args):
    res = runner.invoke(screen_app, [str(a) for a in args])
    return res, " ".join(res.output.replace("│", " ").split())


def _meta_node(i: int, ads: str, pub: str) -> dict:
    """A metadata-only reaction node in the API's shape (no structures)."""
    reactants = {"H": {"star": 1, "H2gas": 0.5}, "O": {"star": 1, "H2Ogas": 1, "H2gas": -1}}[ads]
    return {
        "id": f"m{i}", "Equation": f"* -> {ads}*", "reactants": json.dumps(reactants),
        "products": json.dumps({f"{ads}star": 1}), "reactionEnergy": 0.1 * i, "surfaceComposition": "Ag-fcc",
        "chemicalComposition": "Ag16", "facet": "111", "sites": json.dumps({ads: "fcc"}), "pubId": pub,
        "reactionSystems": [{"name": n, "aseId": f"{i}-{n}"} for n in [*reactants, f"{ads}star"]],
    }  # fmt: skip


@pytest.fixture
def alonso_meta(tmp_path) -> Path:
    """A metadata-only file whose records belong to AlonsoStrain2023 (the `alonso` dataset)."""
    path = tmp_path / "alonso_meta.json"
    nodes = [_meta_node(i, ads, "AlonsoStrain2023") for i, ads in enumerate(["H", "O", "O", "H"])]
    path.write_text(json.dumps({"reactions": {"totalCount": 4, "edges": [{"node": n} for n in nodes]}}))
    return path


def _raw_subset(tmp_path: Path, name: str, adsorbates: set[str]) -> Path:
    """The pt111 fixture (with structures) keeping only the reactions of `adsorbates`."""
    raw = json.loads(FIXTURE.read_text())
    keep = [r for r in raw["raw_reactions"] if re.search(r"-> (\w+)\*", r["Equation"]).group(1) in adsorbates]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"raw_reactions": keep}))
    return path


# ----------------------------------------------------------------------------- 1. funnel on metadata only
@pytest.mark.parametrize("reaction", [["--reaction", "orr", "--stages", "student:0.2,teacher:0.6"], []])
def test_funnel_on_metadata_only_says_it_needs_structures(alonso_meta, tmp_path, monkeypatch, reaction):
    monkeypatch.chdir(tmp_path)
    text = _refused(screen_app, ["funnel", *reaction, "--data-file", alonso_meta, *NO_MODEL],
                    "has no structures (metadata only", "--structures rebuild", "--generate")  # fmt: skip
    assert "OOH" not in text and "no candidates" not in text
    # the same from a metadata-only cache (what `screen fetch --metadata-only` leaves)
    page = json.loads(alonso_meta.read_text())["reactions"]
    page |= {"after": None, "pageInfo": {"hasNextPage": False, "endCursor": "x"}}
    pages = tmp_path / "cache" / "AlonsoStrain2023" / "pages"
    pages.mkdir(parents=True)
    (pages / "page_00000.json").write_text(json.dumps(page))
    args = ["funnel", *reaction, "--dataset", "alonso", "--cache-dir", tmp_path / "cache", *NO_MODEL]
    _refused(screen_app, args, "alonso has no structures (metadata only", "screen run --dataset alonso")
    assert not (tmp_path / "reports").exists()  # refused before any output folder


def test_reaction_funnel_names_required_and_optional_adsorbates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    h_only = _raw_subset(tmp_path, "h_only", {"H"})
    text = _refused(screen_app, ["funnel", "--reaction", "orr", "--data-file", h_only, *NO_MODEL], "orr needs O*, OH*")
    assert "(OOH* optional)" in text and "h_only has no adsorption reactions of O*, OH*, OOH*" in text
    o_only = _raw_subset(tmp_path, "o_only", {"O"})  # O* but no OH*: no surface can get a limiting potential
    _refused(screen_app, ["funnel", "--reaction", "orr", "--data-file", o_only, *NO_MODEL],
             "no surface of o_only has all of O*, OH* that orr needs (OOH* optional)")  # fmt: skip
    assert not (tmp_path / "reports").exists()


# ----------------------------------------------------------------------------- 2. distinct generated candidates
def test_generated_set_draws_distinct_candidates():
    g = generated_set(["Pt"], 20, prototypes=["fcc"])  # fcc(111): 4 sites × H, O, OH = 12 distinct candidates
    keys = [r.systems[f"{r.adsorbate}star"] for r in g.reactions]
    assert len(g.reactions) == 12 and len(set(keys)) == 12
    assert g.counts["possible"] == 12 and g.skipped == [("generate", "the space holds only 12 distinct candidates "
                                                                     "(asked for 20)")]  # fmt: skip
    assert [r.id[:8] for r in g.reactions] == [f"cand{k:04d}" for k in range(12)]
    # AB = BA on a 1:1 prototype: CuPd and PdCu B2(110) are one surface (7 distinct sites)
    b2 = generated_set(["Cu", "Pd"], 50, prototypes=["B2"])
    assert len(b2.reactions) == 21 == len({candidate_identity(b2.atoms[r.systems[f"{r.adsorbate}star"]])
                                           for r in b2.reactions})  # fmt: skip
    assert len({structure_key(b2.atoms[r.systems[f"{r.adsorbate}star"]]) for r in b2.reactions}) == 21
    # a large space: exactly n, none repeated, and the first k of n are the set of k
    big = generated_set(["Pt", "Pd", "Cu", "Ni", "Au", "Ag"], 40, seed=1)
    small = generated_set(["Pt", "Pd", "Cu", "Ni", "Au", "Ag"], 10, seed=1)
    assert len(big.reactions) == 40 and not big.skipped
    assert len({candidate_identity(big.atoms[r.systems[f"{r.adsorbate}star"]]) for r in big.reactions}) == 40
    assert [r.systems for r in small.reactions] == [r.systems for r in big.reactions[:10]]


def test_cli_funnel_generate_says_how_many_distinct_exist(tmp_path):
    res, text = _invoke(["funnel", "--generate", "20", "--elements", "Pt", "--prototypes", "fcc", *NO_MODEL,
                         "--out", tmp_path / "g"])  # fmt: skip
    assert "note: the space holds only 12 distinct candidates (asked for 20)" in text
    assert res.exit_code == 2 and "no-such-teacher" in text  # then the (missing) teacher stops it


# ----------------------------------------------------------------------------- 3. file of another publication
def test_data_file_of_another_dataset_is_refused(alonso_meta, tmp_path):
    res, text = _invoke(["fetch", "--dataset", "saini", "--data-file", alonso_meta])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "holds reactions of pubId AlonsoStrain2023 (4 of 4), not of saini (SainiElectronic2022)" in text
    assert "--dataset alonso" in text and len(res.output.strip().splitlines()) == 1
    res, text = _invoke(["run", "--dataset", "saini", "--data-file", alonso_meta, "--out", tmp_path / "r",
                         *NO_MODEL])  # fmt: skip
    assert res.exit_code == 2 and "not of saini (SainiElectronic2022)" in text and not (tmp_path / "r").exists()
    res, text = _invoke(["funnel", "--dataset", "SainiElectronic2022", "--data-file", alonso_meta, *NO_MODEL])
    assert res.exit_code == 2 and "not of saini" in text
    res, text = _invoke(["fetch", "--dataset", "alonso", "--data-file", alonso_meta])  # the right name
    assert res.exit_code == 0 and "alonso (AlonsoStrain2023)" in text
    res, text = _invoke(["fetch", "--dataset", "AlonsoStrain2023", "--data-file", alonso_meta])
    assert res.exit_code == 0
    with pytest.raises(DatasetMismatchError, match="not of li"):
        load_dataset("li", data_file=alonso_meta)
    # a label that names no registered dataset is a label in code (tests use them); the CLI checks any --dataset
    assert load_dataset("pt111", data_file=FIXTURE).pub_id == "pt111"
    res, text = _invoke(["fetch", "--dataset", "pt111", "--data-file", FIXTURE])
    assert res.exit_code == 1 and "pubId TestPt111Fixture2026" in text and "--dataset TestPt111Fixture2026" in text


def test_recorded_alonso_page_is_not_saini(shared_dir):
    page = shared_dir / "cathub" / "AlonsoStrain2023.page1.metadata.json"
    with pytest.raises(DatasetMismatchError, match=r"AlonsoStrain2023 \(200 of 200\), not of saini"):
        load_dataset("saini", data_file=page)
    assert len(load_dataset("alonso", data_file=page).reactions) == 200


# ----------------------------------------------------------------------------- 4. options a funnel would ignore
GEN = ["funnel", "--reaction", "orr", "--generate", "2"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["funnel", "--generate", "3", "--dataset", "alonso"], ["--generate", "drop --dataset"]),
        (["funnel", "--generate", "3", "--data-file", "x.json", "--limit", "5"], ["--data-file, --limit"]),
        ([*GEN, "--cache-dir", "c"], ["drop --cache-dir"]),
        ([*GEN, "--fraction", "0.5"], ["--fraction: raw-ΔE selection, not used with --reaction"]),
        ([*GEN, "--target", "0", "--window", "0.2"], ["--target, --window: raw-ΔE selection"]),
        (["funnel", "--strains", "0"], ["--strains: only used with --reaction"]),
        (["funnel", "--sites", "3"], ["--sites: only used with --reaction"]),
        (["funnel", "--stages", "student:0"], ["--stages: only used with --reaction"]),
        (["funnel", "--force-scaling"], ["--force-scaling: only used with --reaction"]),
        (["funnel", "--reaction", "orr", "--strains", "0"], ["--strains: only used with --generate"]),
        (["funnel", "--reaction", "orr", "--adsorbates", "O,OH,OOH"], ["--adsorbates: only used with --generate"]),
        (["funnel", "--elements", "Pt", "--prototypes", "fcc"], ["--elements, --prototypes: only used with"]),
        ([*GEN, "--stages", "teacher:0.5,student:0.0"], ["run teacher, student", "student, then teacher, then dft"]),
        ([*GEN, "--stages", "student:0,dft:0,teacher:0.5"], ["run student, dft, teacher"]),
        ([*GEN, "--strains", "50"], ["--strains: 50 % is outside ±20 %"]),
    ],
)  # fmt: skip
def test_funnel_refuses_options_it_would_ignore(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(screen_app, [*args, *NO_MODEL], *expected)
    assert not any(tmp_path.iterdir())  # refused before any work


def _readme_funnel_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    cmds = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("screen funnel ") and "..." not in line:
            cmds.append(shlex.split(line.split("  #")[0])[1:])
    return cmds


def test_documented_funnel_commands_have_no_conflict(tmp_path, monkeypatch):
    import typer

    from screening.cli.funnel import option_conflicts

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_reactions.yaml").write_text("reactions: {}")  # the README's --reaction-table example
    cmds = _readme_funnel_commands()
    assert len(cmds) >= 8, cmds  # the README's examples are all found
    group = typer.main.get_command(screen_app)
    for args in cmds:
        ctx = group.commands["funnel"].make_context("funnel", args[1:])
        p = ctx.params
        assert option_conflicts(ctx, reaction=p["reaction"] is not None, generate=p["generate"] is not None) is None
        if p["stages"]:
            parse_stages(p["stages"])
    for stages in ("student:0.4,teacher:0.2,dft:0.2", "student:0,teacher:0.5", "teacher:0.5", "dft:0",
                   "student:0.1,dft:0.2", "teacher:0.5,dft:0.3"):  # fmt: skip
        parse_stages(stages)


# ----------------------------------------------------------------------------- 5. --out of another command
def test_out_folder_of_another_command_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text("{}")
    (run_dir / "summary.md").write_text("the run's summary")
    assert run_kind(run_dir) == "run"
    for args in (["funnel", "--reaction", "orr", "--generate", "2"], ["funnel", "--generate", "2"]):
        _refused(screen_app, [*args, "--out", run_dir, *NO_MODEL], "holds the results of `screen run` (results.json)",
                 "choose another --out")  # fmt: skip
    assert (run_dir / "summary.md").read_text() == "the run's summary" and not (run_dir / "energies").exists()
    funnel_dir = tmp_path / "funnel"
    funnel_dir.mkdir()
    for name in ("funnel.json", "results.json"):  # a verified funnel writes both
        (funnel_dir / name).write_text("{}")
    assert run_kind(funnel_dir) == "funnel"
    _refused(screen_app, ["run", "--out", funnel_dir, *NO_MODEL], "holds the results of `screen funnel` (funnel.json)")
    _refused(screen_app, ["funnel", "--reaction", "orr", "--generate", "2", "--out", funnel_dir, *NO_MODEL],
             "`screen funnel --reaction` would overwrite")  # fmt: skip
    # the same command into its own folder resumes: it gets as far as loading the (missing) teacher
    res, text = _invoke(["run", "--limit", "1", "--out", run_dir, *NO_MODEL])
    assert res.exit_code == 2 and "no-such-teacher" in text and "holds the results" not in text
    check_run_kind(tmp_path / "new", "reaction")  # an empty or new folder is fine for any command


# ----------------------------------------------------------------------------- 6. legends beside the data
def _legend_checks(fig) -> int:
    """Asserts that no legend of `fig` overlaps a plotting area or covers a data point; returns legends seen."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    for leg in legends:
        box = leg.get_window_extent(renderer)
        for ax in fig.axes:
            if not ax.axison:
                continue
            assert not box.overlaps(ax.get_window_extent(renderer)), "legend over a plotting area"
            for coll in ax.collections:
                pts = coll.get_offset_transform().transform(coll.get_offsets())
                inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
                assert not inside.any(), "legend covers a data point"
    return len(legends)


def test_parity_legends_cover_no_data(tmp_path, monkeypatch):
    import screening.report.plots as plots

    seen: dict[str, int] = {}
    save = plots._save

    def checked_save(fig, out_dir, name, formats, dpi):
        if name in ("parity", "parity_connected", "parity_by_adsorbate", "funnel", "cumulative_error",
                    "abs_error_hist"):  # fmt: skip
            seen[name] = _legend_checks(fig)
        return save(fig, out_dir, name, formats, dpi)

    monkeypatch.setattr(plots, "_save", checked_save)
    rng = np.random.default_rng(0)
    ref = np.linspace(-1.0, 2.0, 30)
    rows = []
    ads = ["H", "O", "OH", "N"]
    for i, x in enumerate(ref):  # over-predictions: the upper-left corner, where the old legends sat
        over = 2.5 if i < 6 else 0.0
        t, s = x + over + rng.normal(0, 0.05), x + over + rng.normal(0, 0.2)
        rows.append({"id": f"r{i}", "adsorbate": ads[i % 4], "reference": x, "teacher": t, "student": s})
    results = {"reactions": rows, "reference": "DFT", "models": {"teacher": {"label": "T"}, "student": {"label": "S"}}}
    plots.make_figures(results, tmp_path)
    assert seen["parity"] == seen["parity_connected"] == seen["parity_by_adsorbate"] == seen["cumulative_error"] == 1
    assert seen["abs_error_hist"] == 0  # the MAE line is named in each panel's title
    funnel = {
        "final_ranking": [{"id": "r0", "teacher": 1.0}],
        "student_scores": {r["id"]: r["student"] for r in rows},
        "teacher_scores": {r["id"]: r["teacher"] for r in rows},
        "selection": {"target": 0.0, "window": 0.5},
    }
    plots.funnel_figure(funnel, tmp_path)
    assert seen["funnel"] == 1


# ----------------------------------------------------------------------------- 7. units in the tables
def test_reaction_tables_have_units_when_regenerated(tmp_path):
    run_dir = tmp_path / "orr"
    run_dir.mkdir()
    shutil.copy(ROOT / "reports" / "example-funnel-orr" / "reaction_funnel.json", run_dir)  # written before units
    res, text = _invoke(["report", run_dir])
    assert res.exit_code == 0, text
    for name in ("reaction_shortlist", "reaction_surfaces"):
        with open(run_dir / f"{name}.csv") as fh:
            header = next(csv.reader(fh))
        md = (run_dir / f"{name}.md").read_text().splitlines()[0]
        for role in ("student", "teacher"):
            for col in (f"{role}_U_L_V", f"{role}_eta_V", f"{role}_descriptor_eV", f"{role}_metric_V"):
                assert col in header and col in md, (name, col)
            assert f"{role}_U_L" not in header and f"{role}_eta" not in header and f"{role}_metric" not in header
        value = r"(student|teacher|dft)_(U_L|eta|descriptor|metric|G_[A-Z][A-Za-z0-9]*)"  # a value column, no unit
        bare = [h for h in header if re.fullmatch(value, h)]
        assert not bare, bare
    with open(run_dir / "reaction_surfaces.csv") as fh:
        header = next(csv.reader(fh))
    assert {"teacher_G_O_eV", "teacher_G_OH_eV", "teacher_G_OOH_eV"} <= set(header)
    with open(run_dir / "reaction_comparison.csv") as fh:
        rows = {r["metric"]: r["value"] for r in csv.DictReader(fh)}
    assert 0 < float(rows["compute saved (fraction of the teacher on every surface)"]) < 1
    assert "MAE student vs teacher (U_L, V)" in rows
    shortlist = json.loads((run_dir / "reaction_funnel.json").read_text())["shortlist"]
    assert "teacher_U_L" in shortlist[0]  # the run file keeps its names: old and new files both regenerate


def test_funnel_tables_have_units(tmp_path):
    from screening.funnel import funnel_and_report

    ds = load_dataset("pt111", data_file=FIXTURE)
    funnel_and_report(from_dataset(ds), dft_lookup(ds), dft_lookup(ds, "s", {"Hstar": 0.1}), tmp_path, fraction=0.5)
    with open(tmp_path / "funnel_ranking.csv") as fh:
        header = next(csv.reader(fh))
    assert "teacher_dE_eV" in header and "student_dE_eV" in header
    assert "teacher" not in header and "student" not in header
    with open(tmp_path / "funnel.csv") as fh:
        rows = {r["metric"]: r["value"] for r in csv.DictReader(fh)}
    saved = [k for k in rows if k.startswith("compute saved")]
    assert saved == ["compute saved (fraction of the teacher on every candidate; measured ms/structure)"]
    assert 0 <= float(rows["structures saved (fraction of the teacher's structures)"]) <= 1


# ----------------------------------------------------------------------------- 8. run files of the wrong shape
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("results.json", "[]", "a JSON list, expected an object with reactions"),
        ("results.json", "{}", "missing reactions, metrics, models"),
        ("results.json", '{"reactions": {}}', "wrong type: reactions (dict, expected list)"),
        ("funnel.json", "[1, 2]", "funnel.json: not a funnel.json of a screening run"),
        ("reaction_funnel.json", '{"reaction": {}}', "missing stages, surfaces"),
    ],
)
def test_report_on_run_files_of_the_wrong_shape(tmp_path, name, content, expected):
    (tmp_path / name).write_text(content)
    text = _refused(screen_app, ["report", tmp_path], str(tmp_path / name), expected)
    assert text.count("error:") == 1 and "Traceback" not in text


# ----------------------------------------------------------------------------- 9. messages keep their quotes
def test_error_messages_keep_their_closing_quote(tmp_path, monkeypatch):
    assert error_text(KeyError("unknown 'x'")) == "unknown 'x'"
    assert error_text(ValueError("got 'relaxx'")) == "got 'relaxx'"
    assert error_text(ValueError('"quoted"')) == '"quoted"'
    assert error_text(KeyError(3)) == "3"
    monkeypatch.chdir(tmp_path)
    for cmd in (["run"], ["funnel"], ["funnel", "--reaction", "orr", "--generate", "1"]):
        text = _refused(screen_app, [*cmd, "--mode", "relaxx", *NO_MODEL], "got 'relaxx'")
        assert "'relaxx'" in text.split("error:")[1]
    _refused(screen_app, ["funnel", "--reaction", "orrr", *NO_MODEL], "unknown reaction 'orrr';")


# ----------------------------------------------------------------------------- 10. strains
@pytest.mark.parametrize(
    ("value", "expected"),
    [("500", "500 % is outside ±20 %"), ("-99", "-99 % is outside ±20 %"), ("nan", "not a finite number"),
     ("0,inf", "not a finite number"), ("2,x", "'x' is not a number"), (",", "no strain given")],
)  # fmt: skip
def test_build_refuses_absurd_strains(value, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(screen_app, ["build", "--elements", "Pt", f"--strains={value}", "-n", "1"], "--strains", expected)
    assert not any(tmp_path.iterdir())


def test_build_accepts_the_datasets_strain_range(tmp_path):
    out = tmp_path / "s.extxyz"
    res, text = _invoke(["build", "--elements", "Pt", "--strains=-8,0,8", "-n", "3", "--out", out])
    assert res.exit_code == 0, text
    assert parse_strains(f"-{MAX_STRAIN_PERCENT:g},{MAX_STRAIN_PERCENT:g}") == [-20.0, 20.0]
    _refused(screen_app, ["build", "--elements", "Pt", "--perturb-strain", "50"], "--perturb-strain")


# ----------------------------------------------------------------------------- 11. --limit, empty file, lattices
def test_limit_is_not_a_skip_and_empty_files_are_named(tmp_path, monkeypatch):
    b = builtin_set(limit=3)
    assert len(b.reactions) == 3 and not b.skipped and b.counts["beyond_limit"] == 33
    s = from_dataset(load_dataset("pt111", data_file=FIXTURE)).limit(2)
    assert not s.skipped and s.counts["beyond_limit"] == 5
    monkeypatch.chdir(tmp_path)
    for content in ("[]", '{"reactions": {"totalCount": 0, "edges": []}}'):
        empty = tmp_path / "empty.json"
        empty.write_text(content)
        for cmd in (["run"], ["funnel"], ["funnel", "--reaction", "orr"]):
            _refused(screen_app, [*cmd, "--data-file", empty, *NO_MODEL], f"{empty} holds no reactions")
    assert not (tmp_path / "reports").exists()


def test_rebuild_records_the_default_lattice_constants(tmp_path):
    from test_rebuild import dummy

    from screening.rebuild import rebuild_screen_set
    from screening.structures import make_bulk

    nodes = [_meta_node(1, "O", "TestRebuild"), _meta_node(2, "H", "TestRebuild")]
    nodes[1] |= {"surfaceComposition": "Ag3In-fcc", "chemicalComposition": "Ag12In4", "sites": '{"H": "fccAAB"}'}
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({"reactions": {"totalCount": 2, "edges": [{"node": n} for n in nodes]}}))
    sset = rebuild_screen_set(load_dataset("TestRebuild", data_file=path), {"teacher": dummy()}, lattice="default")
    assert len(sset.reactions) == 2, sset.skipped
    rows = {r["composition"]: r for r in sset.structures_info["lattices"]}
    for comp, proto in (("Ag", "fcc"), ("Ag3In", "L12")):
        a = make_bulk(comp, proto).info["a"]
        assert rows[comp]["a_A"] == rows[comp]["default_a_A"] == pytest.approx(a) and rows[comp]["c_A"] is None
    # and that is the constant the slab was built with: Ag(111) 2×2, nearest neighbours a/√2 apart
    slab = sset.atoms[next(r for r in sset.reactions if r.surface == "Ag-fcc").systems["star"]]
    assert np.linalg.norm(slab.cell[0]) == pytest.approx(2 * rows["Ag"]["a_A"] / math.sqrt(2))
