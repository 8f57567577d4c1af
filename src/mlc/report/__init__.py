"""Reports: one versioned JSON envelope for every kind, and the one renderer that draws them.

- envelope.py: the envelope (schema, kind, machine, packages, commit, target, body).
- blocks.py: the block model every report is made of; markdown.py, html.py, terminal.py draw it;
  figures.py is the one place matplotlib is used.
- kinds/: one module per report kind (bench, compare, optimize, profile, ...), registered by the
  envelope's kind (_registry.py); render.py is the entry point (to_markdown, to_html, show,
  write_files).
- compare.py: the CI gate's comparison of two bench reports.
"""

from mlc.report.envelope import SCHEMA, envelope, hardware_summary

__all__ = ["SCHEMA", "envelope", "hardware_summary"]
