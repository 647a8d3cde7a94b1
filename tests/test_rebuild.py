"""Rebuilding CatalysisHub structures from metadata: surface cells, site names, specs, lattice constants per model,
the rebuilt ScreenSet and its skip reasons, robust relaxations, CatBench classes, and `screen run --structures`.

Structure building only (fast); models are tiny GemNet-OCs or analytic energy functions, never SevenNet loops."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from typer.testing import CliRunner

from screening.cathub import load_dataset
from screening.cathub.model import reaction_from_node
from screening.evaluators import Evaluator, RelaxOutcome, model_evaluator
from screening.metrics import catbench_class, catbench_summary
from screening.rebuild import (
    LatticeCache,
    NotRebuildable,
    choose_structures,
    fit_lattice,
    model_lattice,
    rebuild_screen_set,
    robust_evaluator,
    spec_from_reaction,
)
from screening.rebuild.spec import surface_prototype
from screening.results import load_results
from screening.structures import make_bulk
from screening.structures.site_names import parse_site_name
from screening.structures.sites import _element_roles, _layers_from_top

ROOT = Path(__file__).resolve().parents[1]
PT111 = ROOT / "tests" / "fixtures" / "cathub" / "pt111_raw.json"
LETTERS = {"ontop": 1, "bridge": 2, "shortbridge": 2, "longbridge": 2, "fcc": 3, "hcp": 3, "threefold": 3}


def dummy(label: str = "dummy") -> Evaluator:
    """An evaluator never called (lattice='default' builds without a model)."""

    def boom(atoms_list):
        raise AssertionError("no model call expected")

    return Evaluator(label, f"{label}-fp", {}, boom)


def analytic(label: str, v0: float, ca0: float = 1.60) -> Evaluator:
    """Energy n·[(V/n − v0)² + 10 (c/a − ca0)²] (eV): minimum at volume v0 per atom and, for hexagonal cells, c/a."""

    def energies(atoms_list):
        out = []
        for a in atoms_list:
            n = len(a)
            e = (a.get_volume() / n - v0) ** 2
            if a.info.get("prototype") in ("hcp", "D019", "A2B_hcp"):
                e += 10 * (a.cell.lengths()[2] / a.cell.lengths()[0] - ca0) ** 2
            out.append(n * e)
        return out

    return Evaluator(label, f"{label}-{v0}", {"kind": "analytic"}, energies)


def node(i, surface, chem, facet, ads, site, energy=0.1, equation=None):
    """A metadata-only reaction node in the API's shape (our own, not a recording)."""
    gas = {"H": ({"star": 1, "H2gas": 0.5}, "0.5H2(g) + * -> H*"),
           "O": ({"star": 1, "O2gas": 0.5}, "0.5O2(g) + * -> O*"),
           "OH": ({"star": 1, "H2Ogas": 1, "H2gas": -0.5}, "H2O(g) - 0.5H2(g) + * -> OH*")}  # fmt: skip
    reactants, eq = gas.get(ads, ({"star": 1}, f"* -> {ads}*"))
    return {
        "id": f"r{i}",
        "Equation": equation or eq,
        "reactants": json.dumps(reactants),
        "products": json.dumps({f"{ads}star": 1}),
        "reactionEnergy": energy,
        "surfaceComposition": surface,
        "chemicalComposition": chem,
        "facet": facet,
        "sites": json.dumps({ads: site}),
        "pubId": "TestRebuild",
        "reactionSystems": [{"name": n, "aseId": f"{i}-{n}"} for n in [*reactants, f"{ads}star"]],
    }


NODES = [
    node(1, "Ag-fcc", "Ag16", "111-2%", "H", "fcc", -0.2),
    node(2, "Ag3In-fcc", "Ag12In4", "111", "O", "hcpAAB", 0.5),
    node(3, "Ag3In-fcc", "Ag12In4", "111", "OH", "ontopB-d", 0.7),
    node(4, "NdAg-bcc", "Ag8Nd8", "101+3%", "OH", "longbridgeA", -0.4),
    node(5, "Al3Pr-hcp", "Al12Pr4", "0001-5%", "H", "ontopA-d", 0.3),
    node(6, "Ti3Al-bcc", "Al4Ti12", "110", "H", "ontopA", 0.1),  # unknown prototype (D0_3)
    node(7, "Ag-fcc", "Ag16", "111", "O", "hollowAABB", 0.1),  # site not on the built slab
    node(8, "Ag-fcc", "Ag16", "100", "O", "hollow", 0.1),  # fcc(100): fourfold hollow
]


@pytest.fixture(scope="module")
def meta_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("meta") / "meta.json"
    path.write_text(json.dumps({"reactions": {"totalCount": len(NODES), "edges": [{"node": n} for n in NODES]}}))
    return path


# ----------------------------------------------------------------------------- specs and skip reasons
@pytest.mark.parametrize(
    "surface, proto",
    [("Ag-fcc", "fcc"), ("Fe-bcc", "bcc"), ("Sc-hcp", "hcp"), ("Ag3In-fcc", "L12"), ("Al3Pr-hcp", "D019"),
     ("NdAg-bcc", "B2"), ("ScAg-fcc", "L10"), ("Ti2Ag-hcp", "A2B_hcp"), ("Cu3Au-L12", "L12")],
)  # fmt: skip
def test_prototype_from_surface_composition(surface, proto):
    assert surface_prototype(surface)[1] == proto


@pytest.mark.parametrize(
    "fields, reason",
    [
        (("Ti3Al-bcc", "Al4Ti12", "110", "H", "ontopA"), "unknown prototype"),
        (("NiAl-hcp", "Al8Ni8", "0001", "H", "ontopA"), "unknown prototype"),
        (("Ag3In", "Ag12In4", "111", "H", "ontopA"), "unknown prototype"),
        (("V-bcc", "V16", "100", "H", "hollow"), "unknown facet"),
        (("Ag3In-fcc", "Ag12Mg4", "111", "H", "ontopA"), "composition mismatch"),
        (("Ag3In-fcc", "Ag13In4", "111", "H", "ontopA"), "no surface cell"),
        (("Ag-fcc", "Ag16", "111", "COOH", "ontop"), "unknown adsorbate"),
        (("Ag-fcc", "Ag16", "111", "H", "top"), "unknown site name"),
        (("Ag-fcc", None, "111", "H", "fcc"), "metadata incomplete"),
    ],
)
def test_spec_skip_reasons(fields, reason):
    with pytest.raises(NotRebuildable, match=f"^{reason}"):
        spec_from_reaction(reaction_from_node(node(0, *fields)))


def test_rebuilt_set_lists_every_reaction(meta_file):
    ds = load_dataset("TestRebuild", data_file=meta_file)
    sset = rebuild_screen_set(ds, {"teacher": dummy()}, lattice="default")
    ids = [r.id for r in sset.reactions] + [i for i, _ in sset.skipped]
    assert sorted(ids) == sorted(n["id"] for n in NODES)  # nothing dropped silently
    reasons = dict(sset.skipped)
    assert reasons["r6"].startswith("unknown prototype") and reasons["r7"].startswith("site not on the built slab")
    assert sset.structures_info["skip_reasons"] == {"unknown prototype": 1, "site not on the built slab": 1}
    assert sset.structures == "rebuild" and "not taken from the DFT" in sset.structures_info["note"]
    assert "ontopB-d" in sset.structures_info["reaction_notes"]["r3"]
    # one clean slab per surface, shared by its adsorbates; gas references by content
    by_id = {r.id: r for r in sset.reactions}
    assert by_id["r2"].systems["star"] == by_id["r3"].systems["star"]
    assert by_id["r1"].systems["star"] != by_id["r8"].systems["star"]
    assert by_id["r1"].systems["H2gas"] == by_id["r5"].systems["H2gas"]
    assert sset.atoms[by_id["r8"].systems["Ostar"]].info["site"] == "hollow"
    limited = rebuild_screen_set(ds, {"teacher": dummy()}, lattice="default", limit=2)
    # reactions beyond --limit are not screened but not skipped either: counted apart, never in skipped
    assert len(limited.reactions) == 2 and limited.counts["beyond_limit"] == 5
    assert [i for i, _ in limited.skipped] == ["r6"] and limited.counts["not_rebuilt"] == 1
    assert "beyond --limit" not in limited.structures_info["skip_reasons"]


def test_element_the_model_lacks_and_lattice_failures_are_skip_reasons(meta_file, tmp_path):
    from gemnet_helpers import tiny_model

    ds = load_dataset("TestRebuild", data_file=meta_file)
    ds.reactions = [r for r in ds.reactions if r.id in ("r4", "r5")]  # Nd, Pr: Z > 50
    small = model_evaluator(tiny_model(num_blocks=1, quad_interaction=False, num_elements=50), "small", {})
    flat = Evaluator("flat", "flat-fp", {}, lambda al: [0.0] * len(al))  # no minimum anywhere
    sset = rebuild_screen_set(ds, {"teacher": analytic("t", 17.0), "student": small}, lattice_cache=tmp_path)
    reasons = dict(sset.skipped)
    assert reasons["r4"].startswith("model lacks an element (small)") and "Z" in reasons["r4"]
    assert reasons["r5"].startswith("model lacks an element (small)") and not sset.reactions
    assert sset.structures_info["skip_reasons"] == {"model lacks an element": 2}
    sset = rebuild_screen_set(ds, {"teacher": flat}, lattice_cache=tmp_path)
    assert len(sset.skipped) == 2 and all(w.startswith("lattice relaxation failed (flat)") for _, w in sset.skipped)


# ----------------------------------------------------------------------------- each model's own lattice
def test_fit_lattice_recovers_the_minimum():
    fcc = make_bulk("Ag", "fcc")
    fit = fit_lattice(analytic("x", 18.0).energies, fcc)
    assert fit.a == pytest.approx((4 * 18.0) ** (1 / 3), rel=2e-3) and fit.c is None
    hcp = make_bulk("Sc", "hcp")
    fit = fit_lattice(analytic("x", 24.0, ca0=1.58).energies, hcp)
    assert fit.c / fit.a == pytest.approx(1.58, rel=3e-3)
    assert math.sqrt(3) / 4 * fit.a**2 * fit.c == pytest.approx(24.0, rel=5e-3)


def test_lattice_cache_per_model_and_bulk(tmp_path):
    ev = analytic("t", 18.0)
    cache = LatticeCache(tmp_path, ev.fingerprint, ev.label)
    first = model_lattice(ev.energies, cache, "Ag", "fcc")
    assert first["source"] == "fit"
    again = model_lattice(dummy().energies, LatticeCache(tmp_path, ev.fingerprint), "Ag", "fcc")
    assert again["source"] == "cache" and again["a"] == first["a"]  # no model call
    data = json.loads(cache.path.read_text())
    assert data["fingerprint"] == ev.fingerprint and "Ag|fcc" in data["entries"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_each_model_gets_its_own_lattice(meta_file, tmp_path):
    ds = load_dataset("TestRebuild", data_file=meta_file)
    t, s = analytic("t", 17.0), analytic("s", 19.0)
    sset = rebuild_screen_set(ds, {"teacher": t, "student": s}, lattice_cache=tmp_path)
    r1 = next(r for r in sset.reactions if r.id == "r1")
    ts, ss = sset.atoms_for("teacher"), sset.atoms_for("student")
    k = r1.systems["star"]
    ratio = ss[k].cell.lengths()[0] / ts[k].cell.lengths()[0]
    assert ratio == pytest.approx((19.0 / 17.0) ** (1 / 3), rel=3e-3)
    assert ts[r1.systems["H2gas"]] is ss[r1.systems["H2gas"]]
    rows = sset.structures_info["lattices"]
    assert {r["model"] for r in rows} == {"t", "s"}


# ----------------------------------------------------------------------------- the 200 recorded reactions
def _site_atoms(adslab: Atoms, n: int) -> list[int]:
    """The `n` top-layer atoms nearest (laterally) to the adsorbate's binding atom; asserts that the next one is
    farther (a site of `n` atoms: 1 ontop, 2 bridge, 3 threefold)."""
    ads = np.flatnonzero(adslab.get_tags() == 2)
    binding = ads[np.argmin(adslab.positions[ads, 2])]
    layer = _layers_from_top(adslab)
    top = np.flatnonzero(layer == 0)
    from ase.geometry import find_mic

    d = adslab.positions[top] - adslab.positions[binding]
    d[:, 2] = 0.0
    _, dist = find_mic(d, adslab.cell, pbc=[True, True, False])
    order = np.argsort(dist)
    assert dist[order[n]] > dist[order[n - 1]] + 0.1, (n, np.round(dist[order], 3))
    return [int(top[i]) for i in order[:n]]


def test_alonso_page1_every_reaction_rebuilt_or_listed(shared_dir):
    raw = shared_dir / "cathub" / "AlonsoStrain2023.page1.metadata.json"
    ds = load_dataset("alonso", data_file=raw)
    assert len(ds.reactions) == 200
    sset = rebuild_screen_set(ds, {"teacher": dummy()}, lattice="default")
    assert len(sset.reactions) + len(sset.skipped) == 200
    assert all(why for _, why in sset.skipped)
    assert len(sset.reactions) == 200  # every reaction of the recorded page is rebuilt
    meta = {r.id: r for r in ds.reactions}
    for r in sset.reactions:
        m = meta[r.id]
        counts = Counter(dict(spec_from_reaction(m).surface.counts))
        slab = sset.atoms[r.systems["star"]]
        assert Counter(slab.get_chemical_symbols()) == counts and len(slab) == sum(counts.values())
        (name,) = [n for n in r.systems if n.endswith("star") and n != "star"]
        adslab = sset.atoms[r.systems[name]]
        ads = name[:-4]
        assert Counter(adslab.get_chemical_symbols()) == counts + Counter(Atoms(ads).get_chemical_symbols())
        # the adsorbate sits on the named site: right number of site atoms with the named chemistry
        sn = parse_site_name(m.sites[ads])
        kind = adslab.info["site_kind"]
        assert kind == sn.kind or (sn.kind, kind) == ("hollow", "threefold")
        roles = _element_roles(slab)
        under = _site_atoms(adslab, LETTERS[kind])
        if sn.letters:
            assert "".join(sorted(roles[adslab[i].symbol] for i in under)) == sn.letters, (r.id, m.sites)
        strain = m.strain_percent
        assert slab.info["strain"] == pytest.approx(strain)


# ----------------------------------------------------------------------------- relaxation robustness, classes
def test_robust_relax_falls_back_to_not_converged():
    a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[10, 10, 10], pbc=True)

    def relax(atoms_list, fmax, max_steps):
        if len(atoms_list) > 1:
            raise RuntimeError("batch blew up")
        x = atoms_list[0]
        if x.positions[1, 2] > 0.7:
            return [RelaxOutcome(math.nan, True, 3, x.positions)]
        return [RelaxOutcome(-1.0, True, 3, x.positions + np.inf)]

    ev = Evaluator("m", "m-fp", {}, lambda al: [-2.0] * len(al), relax)
    rb = robust_evaluator(ev)
    b = a.copy()
    b.positions[1, 2] = 0.6
    out = rb.relax([a, b], 0.05, 10)
    assert [o.converged for o in out] == [False, False] and [o.energy for o in out] == [-2.0, -2.0]
    assert all(np.all(np.isfinite(o.positions)) for o in out) and rb.description["relax_failures"] == 2


def test_catbench_classes():
    assert catbench_class([]) == "normal"
    assert catbench_class(["|ΔE − ref| > 2 eV", "adsorbate migrated"]) == "adsorbate_migration"
    assert catbench_class(["adsorbate desorbed", "not converged"]) == "unphysical_relaxation"
    assert catbench_class(["slab moved > 0.5 Å"]) == "unphysical_relaxation"
    rows = [{"reference": 0.0, "teacher": 1.0, "teacher_anomalies": []},
            {"reference": 0.0, "teacher": 3.0, "teacher_anomalies": ["not converged"]}]  # fmt: skip
    s = catbench_summary(rows, "teacher")
    assert (s["normal"], s["unphysical_relaxation"], s["mae_total"], s["mae_normal"]) == (1, 1, 2.0, 1.0)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def tiny_ckpts(tmp_path_factory):
    from gemnet_helpers import tiny_model

    from calculators.gemnet.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("ckpt")
    out = []
    for seed, name in ((0, "teacher.pt"), (1, "student.pt")):
        m = tiny_model(seed=seed, dtype=torch.float32, num_blocks=1, quad_interaction=False)
        out.append(str(save_checkpoint(m, d / name, {"note": "tiny random test model"})))
    return out


def _invoke(args):
    from screening.cli import app

    res = CliRunner().invoke(app, args)
    return res, res.output


def test_choose_structures(meta_file):
    assert choose_structures(load_dataset("TestRebuild", data_file=meta_file))[0] == "rebuild"
    assert choose_structures(load_dataset("pt111", data_file=PT111))[0] == "cathub"
    assert choose_structures(load_dataset("pt111", data_file=PT111), "rebuild")[0] == "rebuild"


def test_cli_run_rebuild_single_point_and_relax(tiny_ckpts, meta_file, tmp_path):
    teacher, student = tiny_ckpts
    out = tmp_path / "sp"
    base = ["run", "--data-file", str(meta_file), "--teacher", teacher, "--student", student, "--lattice", "default"]
    res, text = _invoke([*base, "--out", str(out)])
    assert res.exit_code == 0, text
    assert "structures: rebuild (auto: the data holds metadata only" in text
    r = load_results(out)
    assert r["dataset"]["structures"] == "rebuild" and r["dataset"]["reactions_screened"] == 6
    assert {s["id"] for s in r["dataset"]["skipped"]} == {"r6", "r7"}
    md = (out / "summary.md").read_text().splitlines()
    assert "rebuilt from metadata" in md[0] and "not the DFT structures" in md[0]
    assert "<title>Screening report — structures rebuilt from metadata" in (out / "index.html").read_text()
    assert md[2].startswith("- STRUCTURES: Structures rebuilt from CatalysisHub metadata")
    for f in ("rebuild_sites.csv", "rebuild_cells.csv", "rebuild_lattices.csv", "agreement.csv", "skipped.csv"):
        assert (out / f).is_file(), f
    assert "unknown prototype" in (out / "skipped.csv").read_text()
    rx = tmp_path / "rx"
    res, text = _invoke([*base, "--mode", "relax", "--max-steps", "3", "--limit", "3", "--out", str(rx)])
    assert res.exit_code == 0, text
    r = load_results(rx)
    assert r["anomalies"]["teacher"]["not converged"] == 3
    classes = (rx / "anomaly_classes.csv").read_text()
    assert "unphysical_relaxation" in classes and "MAE_normal_eV" in classes
    entries = json.loads(next((rx / "energies").glob("teacher-relax-*.json")).read_text())["entries"]
    slabs = [k for k in entries if k.startswith("rb-")]
    assert len(slabs) == 5  # 2 clean slabs (Ag(111)-2%, Ag3In(111)) + 3 adslabs, each once
    assert all(e["steps"] <= 3 for e in entries.values())
    pre = r["dataset"]["structures_info"]["slab_prerelax"]  # each clean slab relaxed once per model first
    assert pre["teacher"]["slabs"] == 2 and pre["student"]["slabs"] == 2 and pre["max_steps"] == 3
    assert len(list((rx / "rebuild").glob("slabs-*.json"))) == 2 and (rx / "rebuild_slab_relaxation.csv").is_file()


def test_cli_cathub_structures_on_metadata_only_says_what_to_do(meta_file, tmp_path):
    res, text = _invoke(["run", "--data-file", str(meta_file), "--structures", "cathub", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--structures rebuild" in text


def test_prerelax_places_adsorbates_on_each_models_relaxed_slab(meta_file, tmp_path):
    from screening.rebuild import prerelax_slabs

    def lift(atoms_list, fmax, max_steps):  # "relaxation": free atoms 0.3 Å up, in x by 0.1 Å
        out = []
        for a in atoms_list:
            pos = a.positions.copy()
            free = a.get_tags() != 0
            pos[free] += [0.1, 0.0, 0.3]
            out.append(RelaxOutcome(-1.0, True, 4, pos))
        return out

    ev = Evaluator("lift", "lift-fp", {}, lambda al: [0.0] * len(al), lift)
    ds = load_dataset("TestRebuild", data_file=meta_file)
    sset = rebuild_screen_set(ds, {"teacher": ev}, lattice="default")
    pre = prerelax_slabs(sset, {"teacher": ev}, tmp_path, fmax=0.05, max_steps=7)
    r1_old = next(r for r in sset.reactions if r.id == "r1")
    r1 = next(r for r in pre.reactions if r.id == "r1")
    assert r1.systems["star"] != r1_old.systems["star"] and r1.systems["H2gas"] == r1_old.systems["H2gas"]
    old, new = sset.atoms[r1_old.systems["Hstar"]], pre.atoms[r1.systems["Hstar"]]
    assert new.positions[-1] - old.positions[-1] == pytest.approx([0.1, 0.0, 0.3], abs=1e-6)
    assert pre.atoms[r1.systems["star"]].info["prerelaxed"]
    assert pre.structures_info["slab_prerelax"]["teacher"]["slabs"] == 5  # Ag(111)-2%, Ag3In, NdAg, Al3Pr, Ag(100)
    calls = []
    ev2 = Evaluator("lift", "lift-fp", {}, lambda al: [0.0] * len(al), lambda *a: calls.append(1) or lift(*a))
    prerelax_slabs(sset, {"teacher": ev2}, tmp_path, fmax=0.05, max_steps=7)
    assert not calls  # resumed from <run>/rebuild/


def test_clean_slab_flags_reach_the_reactions_on_that_slab():
    from screening.reactions import ScreenReaction, ScreenSet
    from screening.rebuild import add_slab_anomalies
    from screening.rebuild.run import slab_flags

    assert slab_flags({"converged": True, "max_lateral_A": 0.1, "max_dz_A": 0.9}) == []  # ordinary relaxation
    assert slab_flags({"converged": False, "max_lateral_A": 0.6, "max_dz_A": 12.0}) == [
        "clean slab not converged", "clean slab reconstructed (lateral > 0.5 Å)", "clean slab broken (|Δz| > 1.5 Å)"
    ]  # fmt: skip
    rx = ScreenReaction("a", "", {"star": 1}, {"Ostar": 1}, {"star": "S", "Ostar": "A"}, {})
    sset = ScreenSet("x", "x", "dft", [rx], {})
    rows = [{"key": "S", "converged": True, "max_lateral_A": 0.7, "max_dz_A": 0.2}]
    results = {
        "dataset": {"structures_info": {"slab_prerelax": {"teacher": {"rows": rows}}, "adslabs": {}}},
        "anomalies": {"teacher": {"reactions without anomaly": 1}},
        "reactions": [{"id": "a", "teacher_anomalies": []}],
    }
    out = add_slab_anomalies(results, sset)
    assert out["reactions"][0]["teacher_anomalies"] == ["clean slab reconstructed (lateral > 0.5 Å)"]
    assert out["anomalies"]["teacher"]["reactions without anomaly"] == 0
    assert catbench_class(out["reactions"][0]["teacher_anomalies"]) == "unphysical_relaxation"


def test_metadata_only_cache_is_all_a_run_needs(tiny_ckpts, tmp_path):
    # what `screen fetch --metadata-only` leaves: metadata pages, no structures
    page = {"after": None, "totalCount": len(NODES), "pageInfo": {"hasNextPage": False, "endCursor": "x"}}
    page["edges"] = [{"node": n} for n in NODES]
    pages = tmp_path / "cache" / "TestRebuild" / "pages"
    pages.mkdir(parents=True)
    (pages / "page_00000.json").write_text(json.dumps(page))
    out = tmp_path / "run"
    res, text = _invoke(["run", "--dataset", "TestRebuild", "--cache-dir", str(tmp_path / "cache"), "--teacher",
                         tiny_ckpts[0], "--student", "none", "--lattice", "default", "--limit", "2", "--out",
                         str(out)])  # fmt: skip
    assert res.exit_code == 0, text
    assert "structures: rebuild (auto: the data holds metadata only" in text
    assert load_results(out)["dataset"]["reactions_screened"] == 2
