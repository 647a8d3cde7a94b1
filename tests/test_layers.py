"""The import contracts of pyproject.toml ([tool.importlinter]) hold: `lint-imports` runs here so that CI, which
runs only `python -m pytest -q`, enforces one-way layers (calculators below distill and screening, screening
independent of distill, a torch-free structure builder, CLI modules imported only by CLI modules, no cycles)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> list[str]:
    beside_python = Path(sys.executable).with_name("lint-imports")
    script = str(beside_python) if beside_python.is_file() else shutil.which("lint-imports")
    assert script, "lint-imports not found: install the test extra (pip install -e '.[test]')"
    return [script, "--no-cache"]


def test_import_contracts_hold():
    proc = subprocess.run(_lint_imports(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "0 broken" in report and "BROKEN" not in report
    assert "6 kept" in report  # every contract of pyproject.toml was checked
