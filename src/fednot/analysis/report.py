"""``fednot report RUN_DIR``: one shareable Markdown file of everything a folder holds.

Every Markdown file under the folder (a run's ``results.md``, each analysis's report) becomes a
section, in path order, and every image they link is embedded as a base64 data URI, so the one
file ``report.md`` carries its figures with it.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from fednot.errors import ConfigError
from fednot.store.cache import atomic_write_text

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
REPORT_NAME = "report.md"


def embed_images(markdown: str, folder: Path) -> str:
    """Replace links to local PNG files with data URIs; other links stay as they are."""

    def inline(match: re.Match[str]) -> str:
        alt, target = match.group(1), match.group(2)
        path = folder / target
        if target.startswith(("http:", "https:", "data:")) or not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f"![{alt}](data:image/png;base64,{data})"

    return _IMAGE.sub(inline, markdown)


def demote_headings(markdown: str) -> str:
    """Shift every heading down one level, so sections nest under the report's title."""
    return re.sub(r"^(#+) ", r"#\1 ", markdown, flags=re.MULTILINE)


def build_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.md`` from every Markdown file under ``run_dir``; return its path."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; pass a run or analysis output folder.")
    sources = sorted(p for p in run_dir.rglob("*.md") if p.name != REPORT_NAME)
    if not sources:
        if (run_dir / "results.json").exists():  # a run whose results.md is gone
            raise ConfigError(
                f"{run_dir} holds results.json but no results.md, which every finished cell "
                "rewrites beside it: rerun the same `fednot run`/`bench` command on this folder "
                "to resume and write it (if results.json is damaged, that command says so; then "
                "run into a new --out)."
            )
        raise ConfigError(
            f"{run_dir} holds no results: run `fednot run --out {run_dir}` or an analysis first."
        )
    sections = []
    for source in sources:
        relative = source.relative_to(run_dir)
        body = embed_images(demote_headings(source.read_text()), source.parent)
        sections.append(f"<!-- from {relative} -->\n{body.strip()}\n")
    contents = "\n".join(f"- {p.relative_to(run_dir)}" for p in sources)
    text = f"# fednot report: {run_dir.name}\n\nContents:\n\n{contents}\n\n" + "\n".join(sections)
    path = run_dir / REPORT_NAME
    atomic_write_text(text, path)
    return path
