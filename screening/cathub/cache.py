"""On-disk cache of CatalysisHub downloads and the resumable two-phase download.

Layout (default root ``data/cache/cathub``, or env ``CATHUB_CACHE_DIR``)::

    <root>/requests.json                  daily request counter {day, count} (no key, ever)
    <root>/<pubId>/state.json             {pubId, totalCount, complete, pages}
    <root>/<pubId>/pages/page_00000.json  one metadata page: {after, totalCount, pageInfo, edges}
    <root>/<pubId>/systems/<aseId>.json   one structure: {aseId, uniqueId, energy, constraints, InputFile}

Every file is written atomically (temp file in the same folder, fsync, ``os.replace``), so a kill leaves
either the old file or the new one. A file that still cannot be read (truncated by a full disk, edited) is named in
a warning and moved to ``quarantine/`` beside it: a broken structure is fetched again, a broken metadata page is
fetched again with every page after it, a broken ``state.json`` is rebuilt.
Phase 1 pages the metadata (200 reactions a request, ``order: "id"``); phase 2
fetches each distinct aseId once. Rerunning resumes: cached pages and systems are never fetched again.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calculators.files import CacheRecoveredWarning, CorruptFileError, atomic_write_json, quarantine, read_json
from screening.cathub.client import CatHubClient, NotFoundError

DEFAULT_CACHE_ROOT = Path("data/cache/cathub")
# a pubId names a folder of the cache: letters, digits, '_', '-', '.', starting with a letter or digit (so never
# '..' or a path), at most 128 characters (CatalysisHub's look like AlonsoStrain2023)
PUB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _recovered(note: str) -> None:
    warnings.warn(
        f"CatalysisHub cache file {note}; it is fetched again by `screen fetch`", CacheRecoveredWarning, stacklevel=3
    )


def check_pub_id(pub_id: str) -> str:
    """`pub_id` when it is a valid name (`PUB_ID_RE`), else `ValueError` saying what a pubId looks like; a pubId
    is never used as a path."""
    if not isinstance(pub_id, str) or not PUB_ID_RE.fullmatch(pub_id):
        raise ValueError(
            f"invalid dataset name or pubId {pub_id!r}: expected a short name (alonso, saini, li) or a CatalysisHub "
            "pubId such as AlonsoStrain2023 (letters, digits, '_', '-', '.', starting with a letter or digit)"
        )
    return pub_id


def default_cache_root() -> Path:
    """``$CATHUB_CACHE_DIR`` or ``data/cache/cathub`` (relative to the working directory)."""
    env = os.environ.get("CATHUB_CACHE_DIR")
    return Path(env) if env else DEFAULT_CACHE_ROOT


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


@dataclass
class CacheStatus:
    """What the cache holds for one pubId."""

    pub_id: str
    path: Path
    total_count: int | None
    reactions: int
    metadata_complete: bool
    systems_needed: int
    systems_cached: int

    def describe(self) -> str:
        """One human line."""
        total = "?" if self.total_count is None else str(self.total_count)
        done = "complete" if self.metadata_complete else "incomplete"
        return (
            f"{self.pub_id}: metadata {self.reactions}/{total} reactions ({done}); "
            f"structures {self.systems_cached}/{self.systems_needed} systems; cache {self.path}"
        )


class DatasetCache:
    """The cache folder of one pubId."""

    def __init__(self, pub_id: str, root: str | Path | None = None) -> None:
        self.pub_id = check_pub_id(pub_id)
        self.root = Path(root) if root is not None else default_cache_root()
        self.path = self.root / _safe_name(pub_id)

    def _read(self, path: Path) -> Any | None:
        """JSON of a cache file, or None after moving a broken one to quarantine (logged, naming both files)."""
        try:
            return read_json(path)
        except CorruptFileError as err:
            _recovered(f"{err}; moved to {quarantine(path)}")
            return None

    def _check_pages(self) -> None:
        """Quarantine the first unreadable page and every page after it (their cursors chain), and mark the
        metadata incomplete so that `fetch_metadata` fetches them again."""
        files = sorted((self.path / "pages").glob("page_*.json"))
        for n, p in enumerate(files):
            page = self._read(p)
            if page is not None and isinstance(page, dict) and isinstance(page.get("edges"), list):
                continue
            if page is not None:  # valid JSON, not a page
                _recovered(f"{p} is not a metadata page; moved to {quarantine(p)}")
            for later in files[n + 1 :]:
                _recovered(f"{later} follows a broken page (its cursor chains on it); moved to {quarantine(later)}")
            state = self._raw_state()
            state.update(complete=False, pages=n)
            atomic_write_json(self.path / "state.json", state, fsync=True)
            return

    @property
    def budget_file(self) -> Path:
        """Daily request counter shared by all datasets under the root."""
        return self.root / "requests.json"

    def _state(self) -> dict[str, Any]:
        self._check_pages()
        return self._raw_state()

    def _raw_state(self) -> dict[str, Any]:
        p = self.path / "state.json"
        state = self._read(p) if p.exists() else None
        if not isinstance(state, dict):
            return {"pubId": self.pub_id, "complete": False, "pages": 0}
        return state

    def page_files(self) -> list[Path]:
        """Cached metadata pages in order (broken ones, and all after them, moved to quarantine first)."""
        self._check_pages()
        return sorted((self.path / "pages").glob("page_*.json"))

    def pages(self) -> Iterator[dict[str, Any]]:
        """Cached metadata pages in order."""
        for p in self.page_files():
            yield read_json(p)

    def nodes(self) -> list[dict[str, Any]]:
        """Distinct reaction nodes of the cached pages (first occurrence of each id kept)."""
        seen: set[str] = set()
        out: list[dict[str, Any]] = []
        for page in self.pages():
            for edge in page.get("edges", []):
                node = edge["node"]
                if node["id"] in seen:
                    continue
                seen.add(node["id"])
                out.append(node)
        return out

    def has_metadata(self) -> bool:
        """True when at least one metadata page is cached."""
        return bool(self.page_files())

    def system_path(self, ase_id: str) -> Path:
        """File of one cached structure."""
        return self.path / "systems" / f"{_safe_name(ase_id)}.json"

    def has_system(self, ase_id: str) -> bool:
        """True when this structure is cached."""
        return self.system_path(ase_id).exists()

    def systems(self) -> dict[str, dict[str, Any]]:
        """All cached structures by aseId; a broken file is moved to quarantine (and fetched again next time)."""
        out = {}
        for p in sorted((self.path / "systems").glob("*.json")):
            node = self._read(p)
            if node is None:
                continue
            if not isinstance(node, dict):
                _recovered(f"{p} is not a structure; moved to {quarantine(p)}")
                continue
            out[node.get("aseId") or node.get("uniqueId") or p.stem] = node
        return out

    @staticmethod
    def ase_ids(nodes: list[dict[str, Any]]) -> list[str]:
        """Distinct aseIds of the given reaction nodes, in first-seen order."""
        seen: dict[str, None] = {}
        for node in nodes:
            for rs in node.get("reactionSystems") or []:
                if rs.get("aseId"):
                    seen.setdefault(rs["aseId"], None)
        return list(seen)

    def status(self) -> CacheStatus:
        """What is cached."""
        state = self._state()
        nodes = self.nodes()
        ids = self.ase_ids(nodes)
        return CacheStatus(
            pub_id=self.pub_id,
            path=self.path,
            total_count=state.get("totalCount"),
            reactions=len(nodes),
            metadata_complete=bool(state.get("complete")),
            systems_needed=len(ids),
            systems_cached=sum(self.has_system(i) for i in ids),
        )

    # ------------------------------------------------------------------ download
    def fetch_metadata(self, client: CatHubClient, *, on_page: Callable[[int, int], None] | None = None) -> CacheStatus:
        """Phase 1: page the reaction metadata (resumes after the last cached page).

        Stops when the server says there is no next page, when every reaction is in, when a page brings no
        new id, or when the cursor repeats (the API sometimes keeps answering ``hasNextPage`` after the end).
        ``on_page(reactions_so_far, total)`` is called after each page.
        """
        state = self._state()
        if state.get("complete"):
            return self.status()
        files = self.page_files()
        seen = {n["id"] for n in self.nodes()}
        after: str | None = None
        if files:
            last = read_json(files[-1])
            after = last["pageInfo"]["endCursor"]
        total = state.get("totalCount")
        index = len(files)
        while True:
            page = client.reactions_page(self.pub_id, after=after)
            total = int(page["totalCount"])
            if total == 0:
                raise NotFoundError(
                    f"CatalysisHub has no reactions for pubId {self.pub_id!r}: check the name "
                    "(known short names: alonso, saini, li)"
                )
            new = [e["node"]["id"] for e in page["edges"] if e["node"]["id"] not in seen]
            seen.update(new)
            atomic_write_json(
                self.path / "pages" / f"page_{index:05d}.json",
                {"after": after, "totalCount": total, "pageInfo": page["pageInfo"], "edges": page["edges"]},
                fsync=True,
            )
            index += 1
            cursor = page["pageInfo"].get("endCursor")
            done = (
                not page["pageInfo"].get("hasNextPage")
                or len(seen) >= total
                or not new
                or cursor is None
                or cursor == after
            )
            state.update({"pubId": self.pub_id, "totalCount": total, "pages": index, "complete": done})
            atomic_write_json(self.path / "state.json", state, fsync=True)
            if on_page:
                on_page(len(seen), total)
            if done:
                return self.status()
            after = cursor

    def fetch_structures(
        self,
        client: CatHubClient,
        *,
        on_system: Callable[[str], None] | None = None,
        limit: int | None = None,
    ) -> CacheStatus:
        """Phase 2: fetch every distinct system (aseId) of the cached reactions once; cached ones are skipped.

        ``on_system(aseId)`` is called after each system is written; ``limit`` caps the systems fetched now.
        """
        self.systems()  # moves broken structure files aside, so that they are fetched again
        todo = [i for i in self.ase_ids(self.nodes()) if not self.has_system(i)]
        if limit is not None:
            todo = todo[:limit]
        for ase_id in todo:
            node = client.system(ase_id)
            node = {**node, "aseId": ase_id}
            atomic_write_json(self.system_path(ase_id), node, fsync=True)
            if on_system:
                on_system(ase_id)
        return self.status()
