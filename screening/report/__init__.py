"""Reports of screening runs: figures, tables, `summary.md` and `index.html` from a run's saved results."""

from screening.report.writer import summary_lines, write_report

__all__ = ["summary_lines", "write_report"]
