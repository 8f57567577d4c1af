"""Where a profile's report files go and what they are named; mlc.report draws them.

JSON (the shared mlc.report/1 envelope) and Markdown always, the HTML page when asked, and
pyinstrument's page of the scoring hot path beside them. The files' names are recorded in
the report (names, not paths: a report must not leak local paths), so the page links the
hot path and the terminal says where the load points are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlc.profile.results import ProfileResult
from mlc.report.envelope import envelope
from mlc.report.render import write_files
from mlc.targets import HardwareTarget


def write_reports(result: ProfileResult, target: HardwareTarget, out_dir: Path, *, html: Path | None = None,
                  hot_path: str | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Writes the profile's files, each whole; returns the envelope and the files by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name, _, version = result.ref.partition(":")
    stem = f"profile-{name}-{version}-{result.target}"
    files = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    if html is not None:
        files["html"] = html
    if hot_path is not None:
        files["pyinstrument"] = (html.parent if html else out_dir) / f"{stem}-hotpath.html"
    result.files = {kind: path.name for kind, path in files.items()}
    report = envelope("profile", result.to_dict(), target=target.to_dict())
    rendered = {kind: path for kind, path in files.items() if kind != "pyinstrument"}
    extra = {files["pyinstrument"]: hot_path} if hot_path is not None else None
    write_files(report, rendered, extra=extra)
    return report, files
