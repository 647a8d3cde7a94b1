"""CatalysisHub datasets (issue #6): parsing, validation, sources, client, cache/resume, CLI — all offline.

The API is replayed by a local HTTP server on 127.0.0.1 (bounded: it stops itself after 60 s at most) from
fixtures written in the recorded shape (tests/fixtures/cathub/pt111_raw.json, built with ase.build).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import logging
import re
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from ase.build import fcc111
from ase.constraints import FixAtoms
from typer.testing import CliRunner

from screening.cathub import (
    AuthError,
    BudgetExceeded,
    CatHubClient,
    CatHubError,
    DatasetCache,
    NotFoundError,
    OfflineError,
    RateLimited,
    adsorbate_indices,
    is_gas,
    known_datasets,
    load_dataset,
    load_file,
    parse_equation,
    parse_facet,
    parse_stoichiometry,
    reaction_from_node,
    resolve_dataset,
    write_csv_source,
)
from screening.cathub.sources import nodes_from_raw
from screening.cli import app

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cathub"
RAW = FIXTURES / "pt111_raw.json"
PUB = "TestPt111Fixture2026"
KEY = "sekrit-Key-0123456789abcdef"


def raw_nodes() -> list[dict]:
    return json.loads(RAW.read_text())["raw_reactions"]


# ----------------------------------------------------------------------------- fake CatalysisHub
class FakeCatHub:
    """Replays reactions (metadata pages, ordered by id) and systems (by aseId) like the GraphQL API.

    ``script``: HTTP statuses answered to the next requests before normal service (e.g. [429]);
    ``overlap``: each page after the first repeats the previous page's last reaction (a cross-page duplicate).
    """

    def __init__(self, nodes: list[dict], *, page_size: int = 3, overlap: bool = False, key: str = KEY) -> None:
        self.meta: list[dict] = []
        self.systems: dict[str, dict] = {}
        for n in sorted(nodes, key=lambda n: n["id"]):
            m = {k: v for k, v in n.items() if k != "reactionSystems"}
            m["reactionSystems"] = []
            for rs in n["reactionSystems"]:
                m["reactionSystems"].append({"name": rs["name"], "aseId": rs["aseId"], "energyCorrection": 0.0})
                if "systems" in rs:
                    self.systems[rs["aseId"]] = {"uniqueId": rs["aseId"], **rs["systems"]}
            self.meta.append(m)
        self.page_size, self.overlap, self.key = page_size, overlap, key
        self.script: list[int] = []
        self.log: list[dict] = []  # {"kind", "query", "headers"}
        self.echo_key_on_error = False

    def counts(self) -> Counter:
        return Counter(e["kind"] for e in self.log)

    def handle(self, body: dict, headers: dict) -> tuple[int, dict]:
        q = body["query"]
        kind = "systems" if "systems(" in q else "reactions"
        self.log.append({"kind": kind, "query": q, "headers": headers})
        if self.script and self.script[0] == "hang":  # answer too late: the client times out
            self.script.pop(0)
            import time

            time.sleep(1.0)
        if self.script:
            status = self.script.pop(0)
            msg = f"error for key {headers.get('x-api-key')}" if self.echo_key_on_error else "slow down"
            return status, {"errors": [{"message": msg}]}
        if headers.get("x-api-key") != self.key:
            return 401, {"errors": [{"message": "invalid API key"}]}
        if kind == "systems":
            uid = re.search(r'uniqueId: "([^"]+)"', q).group(1)
            node = self.systems.get(uid)
            return 200, {"data": {"systems": {"edges": [{"node": node}] if node else []}}}
        if 'order: "id"' not in q:
            return 400, {"errors": [{"message": "test server: order: id required"}]}
        pub = re.search(r'pubId: "([^"]+)"', q).group(1)
        nodes = [m for m in self.meta if m["pubId"] == pub]
        m = re.search(r'after: "([^"]+)"', q)
        start = int(base64.b64decode(m.group(1)).decode().split(":")[1]) + 1 if m else 0
        if m and self.overlap:
            start -= 1
        chunk = nodes[start : start + self.page_size]
        end = start + len(chunk) - 1
        cursor = base64.b64encode(f"arrayconnection:{end}".encode()).decode()
        page = {
            "totalCount": len(nodes),
            "pageInfo": {"hasNextPage": end < len(nodes) - 1, "endCursor": cursor if chunk else None},
            "edges": [{"node": n} for n in chunk],
        }
        return 200, {"data": {"reactions": page}}


@pytest.fixture
def server():
    """Start a FakeCatHub on 127.0.0.1 (random port); it shuts down after the test or after 60 s."""
    holder: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, payload = holder["fake"].handle(body, {k.lower(): v for k, v in self.headers.items()})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client may have given up (timeout test)
                self.wfile.write(data)

        def log_message(self, *args):  # keep pytest output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopper = threading.Timer(60.0, httpd.shutdown)
    stopper.daemon = True
    stopper.start()
    holder["fake"] = FakeCatHub(raw_nodes())
    holder["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield holder
    finally:
        stopper.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class FakeTime:
    """Injectable clock/sleep: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def make_client(url: str, t: FakeTime | None = None, **kw) -> CatHubClient:
    t = t or FakeTime()
    kw.setdefault("api_key", KEY)
    return CatHubClient(url, clock=t.clock, sleep=t.sleep, timeout_s=5, **kw)


def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------------------- registry & parsing
def test_registry_is_data_and_resolves_names_and_pubids():
    reg = known_datasets()
    assert {k: (v.pub_id, v.reactions) for k, v in reg.items()} == {
        "alonso": ("AlonsoStrain2023", 2628),
        "saini": ("SainiElectronic2022", 441),
        "li": ("LiScreening2021", 337),
    }
    assert reg["alonso"].adsorbates == ("H", "O", "OH")
    assert resolve_dataset("ALONSO").pub_id == "AlonsoStrain2023"
    assert resolve_dataset("LiScreening2021").name == "li"
    other = resolve_dataset("GauthierSolvation2017")
    assert (other.pub_id, other.reactions) == ("GauthierSolvation2017", None)


@pytest.mark.parametrize(
    ("equation", "reactants", "products"),
    [
        ("H2O(g) - 0.5H2(g) + * -> OH*", {"H2Ogas": 1, "H2gas": -0.5, "star": 1}, {"OHstar": 1}),
        ("0.5O2(g) + * -> O*", {"O2gas": 0.5, "star": 1}, {"Ostar": 1}),
        ("0.5H2(g) + * -> H*", {"H2gas": 0.5, "star": 1}, {"Hstar": 1}),
        ("H2O(g) - H2(g) + * -> O*", {"H2Ogas": 1, "H2gas": -1, "star": 1}, {"Ostar": 1}),
        ("CO(g) + * -> CO*", {"COgas": 1, "star": 1}, {"COstar": 1}),
        ("CH4(g) - 1.5H2(g) + * -> CH*", {"CH4gas": 1, "H2gas": -1.5, "star": 1}, {"CHstar": 1}),
    ],
)
def test_parse_equation_forms(equation, reactants, products):
    assert parse_equation(equation) == (reactants, products)


def test_parse_stoichiometry_and_facets():
    assert parse_stoichiometry('{"star": 1, "H2gas": -0.5, "H2Ogas": 1}') == {
        "star": 1.0,
        "H2gas": -0.5,
        "H2Ogas": 1.0,
    }
    assert parse_facet("111-5%") == ("111", -5.0)
    assert parse_facet("111+5%") == ("111", 5.0)
    assert parse_facet("0001-3%") == ("0001", -3.0)
    assert parse_facet("101") == ("101", 0.0)
    assert parse_facet("111+2.5%") == ("111", 2.5)
    assert parse_facet(None) == (None, 0.0)


def test_gas_recognition_by_name_then_size():
    slab = fcc111("Pt", size=(2, 2, 3), vacuum=10.0)
    tiny = fcc111("Pt", size=(1, 1, 3), vacuum=10.0)  # 3 atoms
    assert is_gas("H2gas") and is_gas("COgas", slab)
    assert not is_gas("star", tiny) and not is_gas("Ostar", tiny)
    assert is_gas("H2", tiny)  # name says nothing: < 10 atoms
    assert not is_gas("slab", slab)
    big = slab.copy()
    big.set_cell(slab.cell * [3, 3, 3], scale_atoms=False)  # > 8000 Å³
    assert big.cell.volume > 8000 and is_gas("thing", big)


# ----------------------------------------------------------------------------- real recorded page
def test_real_alonso_page_parses(shared_dir):
    data = json.loads((shared_dir / "cathub" / "AlonsoStrain2023.page1.metadata.json").read_text())
    nodes = nodes_from_raw(data)
    assert len(nodes) == 200 and data["reactions"]["totalCount"] == 2628
    rxns = [reaction_from_node(n) for n in nodes]
    forms = Counter(r.equation for r in rxns)
    assert len(forms) >= 3
    for r in rxns:  # every equation form agrees with the JSON stoichiometry strings
        assert parse_equation(r.equation) == (r.reactants, r.products), r.equation
        assert r.pub_id == "AlonsoStrain2023" and r.reaction_energy is not None
        assert r.adsorbate in {"H", "O", "OH"}
        assert r.adsorbate in r.sites
        assert r.facet in {"111", "101", "0001"}, r.facet_raw
        assert r.facet_raw.startswith(r.facet)
        if r.facet_raw == r.facet:
            assert r.strain_percent == 0.0
        else:
            assert r.facet_raw == f"{r.facet}{r.strain_percent:+g}%"
        assert not r.has_structures
        assert {s.name for s in r.systems.values() if s.gas} == {n for n in r.systems if n.endswith("gas")}
    strains = {r.strain_percent for r in rxns}
    assert {-5.0, 5.0, 0.0} <= strains
    oh = next(r for r in rxns if r.adsorbate == "OH")
    assert oh.reactants == {"star": 1.0, "H2gas": -0.5, "H2Ogas": 1.0}
    # metadata only: loads as unchecked, not invalid
    from screening.cathub import build_dataset

    ds = build_dataset(rxns, name="alonso", pub_id="AlonsoStrain2023", source="page1")
    assert ds.counts["unchecked"] == 200 and ds.counts["invalid"] == 0
    assert DatasetCache.ase_ids(nodes) and len(DatasetCache.ase_ids(nodes)) < 3 * len(nodes)


def test_real_page_shape_pages_through_fake_server(shared_dir, server, tmp_path):
    data = json.loads((shared_dir / "cathub" / "AlonsoStrain2023.page1.metadata.json").read_text())
    nodes = nodes_from_raw(data)
    server["fake"] = FakeCatHub(nodes, page_size=80, overlap=True)
    cache = DatasetCache("AlonsoStrain2023", tmp_path)
    status = cache.fetch_metadata(make_client(server["url"]))
    assert status.reactions == 200 and status.metadata_complete
    assert status.systems_needed == len(DatasetCache.ase_ids(nodes))
    ds = load_dataset("alonso", cache_dir=tmp_path)
    assert len(ds.reactions) == 200 and ds.expected_count == 200


# ----------------------------------------------------------------------------- structures, tags, validation
def test_fixture_structures_tags_constraints_and_energies():
    ds = load_dataset(PUB, data_file=RAW)
    assert ds.counts["valid"] == 7 and not ds.invalid
    assert ds.counts["by_adsorbate"] == {"O": 3, "H": 2, "OH": 2}
    o = next(r for r in ds.reactions if r.equation == "0.5O2(g) + * -> O*" and r.facet_raw == "111")
    slab, ads = o.atoms("star"), o.atoms("Ostar")
    assert len(slab) == 12 and len(ads) == 13
    assert ads.get_tags().tolist() == [0] * 8 + [1] * 4 + [2]
    assert slab.get_tags().tolist() == [0] * 8 + [1] * 4
    assert ads.constraints and isinstance(ads.constraints[0], FixAtoms)
    assert ads.constraints[0].get_indices().tolist() == list(range(8))
    assert o.systems["O2gas"].gas and not o.systems["Ostar"].gas
    assert (o.atoms("O2gas").get_tags() == 2).all()
    strained = next(r for r in ds.reactions if r.facet_raw == "111+2%" and r.adsorbate == "O")
    assert strained.strain_percent == 2.0
    assert strained.atoms("star").cell[0, 0] == pytest.approx(slab.cell[0, 0] * 1.02)
    # the Gauthier-style reaction with a released species (H2gas −1) validates with the API's signs
    w = next(r for r in ds.reactions if r.equation == "H2O(g) - H2(g) + * -> O*")
    assert w.reactants["H2gas"] == -1.0
    e = {n: s.energy for n, s in w.systems.items()}
    assert w.reaction_energy == pytest.approx(e["Ostar"] - (e["star"] - e["H2gas"] + e["H2Ogas"]), abs=1e-9)


def test_adsorbate_indices_without_prefix_uses_highest_atoms():
    slab = fcc111("Pt", size=(2, 2, 3), vacuum=10.0)
    from ase.build import add_adsorbate

    ads = slab.copy()
    add_adsorbate(ads, "O", 1.5, "fcc")
    assert adsorbate_indices(slab, ads) == [12]
    # adsorbate first, slab after: not a prefix, falls back to per-element highest-z
    reordered = ads[[12] + list(range(12))]
    assert adsorbate_indices(slab, reordered) == [0]
    # same element as the slab: the highest Pt is the adatom
    adatom = slab.copy()
    add_adsorbate(adatom, "Pt", 2.2, "fcc")
    shuffled = adatom[[5, 12, 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]]
    assert adsorbate_indices(slab, shuffled) == [1]


def test_validation_reports_corrupted_reaction(caplog):
    nodes = raw_nodes()
    bad = copy.deepcopy(nodes)
    bad[2]["reactionEnergy"] += 0.002  # 2 meV off
    bad[4]["reactionSystems"][0]["systems"]["energy"] -= 0.5  # a corrupted system energy
    from screening.cathub import build_dataset

    with caplog.at_level(logging.WARNING):
        ds = build_dataset([reaction_from_node(n) for n in bad], name="t", pub_id=PUB, source="test")
    assert sorted(i.id for i in ds.invalid) == sorted([bad[2]["id"], bad[4]["id"]])
    assert ds.counts["invalid"] == 2 and ds.counts["valid"] == 5
    assert "meV" in ds.invalid[0].reason
    assert bad[2]["id"] in ds.summary() and "2 invalid" in ds.summary()
    assert bad[2]["id"] in caplog.text
    # 0.5 meV off is still within 1 meV
    ok = copy.deepcopy(nodes)
    ok[0]["reactionEnergy"] += 0.0005
    ds_ok = build_dataset([reaction_from_node(n) for n in ok], name="t", pub_id=PUB, source="test")
    assert not ds_ok.invalid


def test_validation_accepts_energy_corrections_when_they_explain_the_energy():
    node = copy.deepcopy(raw_nodes()[0])  # 0.5O2(g) + * -> O*
    ostar = next(rs for rs in node["reactionSystems"] if rs["name"] == "Ostar")
    ostar["energyCorrection"] = 0.25
    node["reactionEnergy"] += 0.25
    r = reaction_from_node(node)
    assert r.validate() is None
    assert r.energy_from_systems(with_corrections=True) == pytest.approx(node["reactionEnergy"])
    ostar["energyCorrection"] = 0.0
    assert "meV" in reaction_from_node(node).validate()


# ----------------------------------------------------------------------------- file sources agree
def _signature(ds):
    out = {}
    for r in ds.reactions:
        out[r.id] = (
            round(r.reaction_energy, 9),
            tuple(sorted(r.reactants.items())),
            tuple(sorted(r.products.items())),
            tuple(
                sorted(
                    (n, round(s.energy, 9), tuple(s.atoms.numbers), tuple(s.atoms.get_tags()), s.gas)
                    for n, s in r.systems.items()
                )
            ),
        )
    return out


@pytest.mark.parametrize("fmt", ["extxyz", "db"])
def test_csv_plus_structures_round_trip(tmp_path, fmt):
    ds = load_dataset(PUB, data_file=RAW)
    write_csv_source(ds.reactions, tmp_path / "rx.csv", tmp_path / f"rx.{fmt}")
    again = load_dataset(PUB, data_file=tmp_path / "rx.csv")
    assert _signature(again) == _signature(ds)
    r = next(x for x in again.reactions if x.adsorbate == "O")
    assert r.atoms("Ostar").constraints[0].get_indices().tolist() == list(range(8))
    assert r.facet_raw == "111" and r.surface_composition == "Pt-fcc"
    # the structure file itself is accepted when the CSV sits beside it
    assert _signature(load_dataset(PUB, data_file=tmp_path / f"rx.{fmt}")) == _signature(ds)


def test_catbench_processed_json(tmp_path):
    import gzip

    ds = load_dataset(PUB, data_file=RAW)
    from screening.cathub.model import atoms_to_input_file

    doc: dict = {"_structures": {}}
    for r in ds.reactions:
        raw = {}
        for n, s in r.systems.items():
            stoi = r.products[n] if n in r.products else -r.reactants[n]
            entry = {"stoi": stoi, "energy_ref": s.energy}
            text = atoms_to_input_file(s.atoms)
            if n == "star":  # interned like CatBench 1.1.1
                doc["_structures"][s.ase_id] = text
                entry["ref"] = s.ase_id
            else:
                entry["atoms_json"] = text
            raw[n] = entry
        doc[f"Pt12_{r.equation}_{r.id}"] = {
            "raw": raw,
            "ref_ads_eng": r.reaction_energy,
            "adsorbate_indices": [],
        }
    path = tmp_path / "fixture_adsorption.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump(doc, f)
    cb = load_dataset(PUB, data_file=path)
    assert cb.counts["valid"] == 7 and not cb.invalid
    assert "CatBench" in cb.source
    by_eq = {(r.reaction_energy, r.adsorbate) for r in cb.reactions}
    assert by_eq == {(r.reaction_energy, r.adsorbate) for r in ds.reactions}
    o = next(r for r in cb.reactions if r.adsorbate == "O")
    assert o.atoms("Ostar").get_tags().tolist() == [0] * 8 + [1] * 4 + [2]
    assert o.atoms("Ostar").constraints  # the ASE json keeps FixAtoms


def test_unrecognised_and_missing_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a recognised"):
        load_file(p)
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "nope.json")


# ----------------------------------------------------------------------------- client against the fake server
def test_paging_with_duplicate_across_pages_and_two_phases(server, tmp_path):
    fake = server["fake"] = FakeCatHub(raw_nodes(), page_size=3, overlap=True)
    client = make_client(server["url"])
    cache = DatasetCache(PUB, tmp_path)
    status = cache.fetch_metadata(client)
    assert status.reactions == 7 and status.total_count == 7 and status.metadata_complete
    assert fake.counts()["reactions"] == 3  # pages of 3 overlapping by one: ids 0-2, 2-4, 4-6
    served = [e["node"]["id"] for p in cache.pages() for e in p["edges"]]
    assert len(served) == 9 and len(set(served)) == 7  # two duplicates across pages, dropped
    assert all('order: "id"' in e["query"] and "first: 200" in e["query"] for e in fake.log)
    status = cache.fetch_structures(client)
    assert fake.counts()["systems"] == 11  # 2 slabs × (star, O*, H*, OH*) + 3 gas: each fetched once
    assert status.systems_cached == status.systems_needed == 11
    ds = load_dataset(PUB, cache_dir=tmp_path)
    assert ds.counts["valid"] == 7 and ds.duplicates_dropped == 0 and not ds.invalid
    assert _signature(ds) == _signature(load_dataset(PUB, data_file=RAW))
    # rerun: complete cache, zero requests
    before = len(fake.log)
    load_dataset(PUB, cache_dir=tmp_path, allow_network=True, client=make_client(server["url"]))
    assert len(fake.log) == before


def test_rate_limit_spacing_and_retry_after_429(server):
    fake = server["fake"]
    fake.script = [429, 503]
    t = FakeTime()
    client = make_client(server["url"], t, requests_per_minute=10, backoff_s=2.0)
    sent_at: list[float] = []
    post = client._post_once

    def timed_post(query):
        sent_at.append(t.now)
        return post(query)

    client._post_once = timed_post
    page = client.reactions_page(PUB)  # 429, 503, then the page
    assert len(page["edges"]) == 3 and client.requests_made == 3
    client.system(next(iter(fake.systems)))
    client.system(next(iter(fake.systems)))
    assert len(sent_at) == 5
    assert min(np.diff(sent_at)) >= 6.0 - 1e-9  # ≤ 10 requests/minute, retries included
    assert 2.0 in t.sleeps and 4.0 in t.sleeps  # exponential back-off 2 s, 4 s
    assert sent_at[-1] - sent_at[0] == pytest.approx(4 * 6.0)  # no more waiting than needed


def test_timeout_is_retried(server):
    fake = server["fake"]
    fake.script = ["hang"]
    t = FakeTime()
    client = CatHubClient(server["url"], api_key=KEY, clock=t.clock, sleep=t.sleep, timeout_s=0.3, backoff_s=1.0)
    page = client.reactions_page(PUB)
    assert len(page["edges"]) == 3 and client.requests_made == 2 and 1.0 in t.sleeps


def test_retries_exhausted_and_key_redacted(server, caplog):
    fake = server["fake"]
    fake.script = [500, 500, 500]
    fake.echo_key_on_error = True
    client = make_client(server["url"], max_retries=2, backoff_s=0.01)
    with caplog.at_level(logging.DEBUG), pytest.raises(CatHubError) as exc:
        client.reactions_page(PUB)
    assert "HTTP 500" in str(exc.value) and "***" in str(exc.value)
    assert KEY not in str(exc.value) and KEY not in repr(exc.value) and KEY not in repr(client)
    assert KEY not in caplog.text
    assert fake.log[0]["headers"]["x-api-key"] == KEY  # it was sent, as a header
    fake.script = [429, 429]
    with pytest.raises(RateLimited):
        make_client(server["url"], max_retries=1, backoff_s=0.01).reactions_page(PUB)


def test_auth_errors(server, monkeypatch):
    fake = server["fake"]
    with pytest.raises(AuthError, match="401.*set CATHUB_API_KEY"):
        make_client(server["url"], api_key="wrong-key").reactions_page(PUB)
    assert len(fake.log) == 1  # 401 is not retried
    fake.script = [403]
    with pytest.raises(AuthError, match="403"):
        make_client(server["url"]).reactions_page(PUB)
    fake.script = [301]
    with pytest.raises(CatHubError, match="redirect.*CATHUB_API_URL"):
        make_client(server["url"]).reactions_page(PUB)
    monkeypatch.delenv("CATHUB_API_KEY", raising=False)
    n = len(fake.log)
    with pytest.raises(AuthError, match="set CATHUB_API_KEY"):
        make_client(server["url"], api_key="").reactions_page(PUB)
    assert len(fake.log) == n  # no request without a key


def test_wrong_pubid_and_no_network(server, tmp_path):
    with pytest.raises(NotFoundError, match="NoSuchPub2099"):
        DatasetCache("NoSuchPub2099", tmp_path).fetch_metadata(make_client(server["url"]))
    with pytest.raises(NotFoundError):
        make_client(server["url"]).system("0" * 32)
    with pytest.raises(OfflineError, match="offline: use --data-file or the cache") as exc:
        make_client(dead_url()).reactions_page(PUB)
    assert KEY not in str(exc.value)
    with pytest.raises(OfflineError, match="nothing cached"):
        load_dataset("alonso", cache_dir=tmp_path)


def test_budgets(server, tmp_path):
    budget = tmp_path / "requests.json"
    c = make_client(server["url"], daily_budget=2, budget_file=budget, today=lambda: "2026-11-22")
    c.reactions_page(PUB)
    c.reactions_page(PUB)
    with pytest.raises(BudgetExceeded, match="daily"):
        c.reactions_page(PUB)
    # the count persists across clients (same day) and resets the next day
    with pytest.raises(BudgetExceeded):
        make_client(server["url"], daily_budget=2, budget_file=budget, today=lambda: "2026-11-22").system("x")
    assert json.loads(budget.read_text()) == {"day": "2026-11-22", "count": 2}
    nxt = make_client(server["url"], daily_budget=2, budget_file=budget, today=lambda: "2026-11-23")
    nxt.reactions_page(PUB)
    run = make_client(server["url"], max_requests=1)
    run.reactions_page(PUB)
    with pytest.raises(BudgetExceeded, match="this run"):
        run.reactions_page(PUB)
    assert KEY not in budget.read_text()


def test_resume_after_interrupt_fetches_only_the_rest(server, tmp_path, caplog):
    fake = server["fake"]
    cache = DatasetCache(PUB, tmp_path)

    class Boom(Exception):
        pass

    def die_after_first_page(n, total):
        raise Boom

    with pytest.raises(Boom):
        cache.fetch_metadata(make_client(server["url"]), on_page=die_after_first_page)
    assert cache.status().reactions == 3 and not cache.status().metadata_complete
    cache.fetch_metadata(make_client(server["url"]))
    assert fake.counts()["reactions"] == 3  # 1 before the kill + the 2 remaining pages, none repeated
    assert cache.status().reactions == 7

    k = 4
    fetched: list[str] = []

    def die_after_k(ase_id):
        fetched.append(ase_id)
        if len(fetched) == k:
            raise Boom

    with pytest.raises(Boom):
        cache.fetch_structures(make_client(server["url"]), on_system=die_after_k)
    assert fake.counts()["systems"] == k and cache.status().systems_cached == k
    with caplog.at_level(logging.DEBUG):
        ds = load_dataset(PUB, cache_dir=tmp_path, allow_network=True, client=make_client(server["url"]))
    assert fake.counts()["systems"] == 11  # only the 7 missing systems were requested
    asked = [re.search(r'uniqueId: "([^"]+)"', e["query"]).group(1) for e in fake.log if e["kind"] == "systems"]
    assert len(asked) == len(set(asked))
    assert ds.counts["valid"] == 7
    assert not list(cache.path.rglob("*.tmp"))  # atomic writes leave no temp files
    for f in tmp_path.rglob("*"):  # the key is in no cache file
        if f.is_file():
            assert KEY not in f.read_text()
    assert KEY not in caplog.text


# ----------------------------------------------------------------------------- CLI
def test_cli_offline_without_key_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.delenv("CATHUB_API_KEY", raising=False)
    monkeypatch.setenv("CATHUB_API_URL", dead_url())
    res = CliRunner().invoke(app, ["fetch", "--dataset", "alonso", "--cache-dir", str(tmp_path)])
    assert res.exit_code != 0
    assert isinstance(res.exception, SystemExit)  # a clean exit, no traceback
    assert "set CATHUB_API_KEY" in res.output and "offline: use --data-file or the cache" in res.output
    monkeypatch.setenv("CATHUB_API_KEY", KEY)
    res = CliRunner().invoke(app, ["fetch", "--dataset", "alonso", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "offline: use --data-file or the cache" in res.output and KEY not in res.output


def test_cli_fetch_resumable_and_data_file(server, tmp_path, monkeypatch):
    fake = server["fake"]
    monkeypatch.setenv("CATHUB_API_KEY", KEY)
    monkeypatch.setenv("CATHUB_API_URL", server["url"])
    monkeypatch.setattr(CatHubClient, "_wait_turn", lambda self: None)  # --rate is capped at the API's 10/min
    base = ["fetch", "--dataset", PUB, "--cache-dir", str(tmp_path)]
    res = CliRunner().invoke(app, [*base, "--metadata-only"])
    assert res.exit_code == 0, res.output
    assert "7/7 reactions (complete)" in res.output and "structures 0/11" in res.output
    assert fake.counts() == {"reactions": 3}
    res = CliRunner().invoke(app, [*base, "--max-requests", "5"])
    assert res.exit_code == 1 and "budget" in res.output and fake.counts()["systems"] == 5
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 0, res.output
    assert "structures 11/11" in res.output and "7 valid" in res.output and fake.counts()["systems"] == 11
    n = len(fake.log)
    monkeypatch.delenv("CATHUB_API_KEY")  # a complete cache needs no key and no request
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 0 and "nothing to fetch" in res.output and len(fake.log) == n
    res = CliRunner().invoke(app, ["fetch", "--dataset", PUB, "--data-file", str(RAW)])
    assert res.exit_code == 0 and "7 valid" in res.output
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text()
