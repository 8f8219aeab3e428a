"""The design is written down in the repository: every citation resolves, every setting is in the table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _text_files() -> list[Path]:
    """The project's Python, Markdown and config files (not the venv, caches or test artifacts)."""
    skip = {".venv", ".git", "node_modules", "artifacts", "build", "runs", ".mmexplore-cache", "__pycache__"}
    out = []
    for pattern in ("*.py", "*.md", "*.toml", "Makefile"):
        out += [p for p in ROOT.rglob(pattern) if not skip & set(p.relative_to(ROOT).parts)]
    return out


def test_every_design_citation_points_at_a_section_of_docs_design():
    sections = set(re.findall(r"^## §(\d+)", (DOCS / "design.md").read_text(encoding="utf-8"), flags=re.M))
    assert {"1", "2", "5", "7", "8"} <= sections
    cited, stale = [], []
    for path in _text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"docs/design\.md §(\d+)(?:/§(\d+))?", text):
            cited += [(path, n) for n in m.groups() if n]
        if re.search(r"\bDESIGN §|/work/shared", text) and path.name != "test_docs.py":
            stale.append(path.relative_to(ROOT))
    assert len(cited) >= 15
    missing = [f"{p.relative_to(ROOT)}: §{n}" for p, n in cited if n not in sections]
    assert not missing and not stale, (missing, stale)


def test_settings_table_lists_every_variable_settings_reads():
    source = (ROOT / "mmexplore" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r"env(?:\.get\(|\[)\"([A-Z_]+)\"", source)) | set(re.findall(r"\"(MMEXPLORE_[A-Z_]+)\"", source))
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", (DOCS / "settings.md").read_text(encoding="utf-8"), flags=re.M))
    assert {"MMEXPLORE_MODEL", "MMEXPLORE_ASSETS_DIR", "HF_HUB_OFFLINE"} <= read
    assert read == table, f"read but not documented: {sorted(read - table)}; documented but not read: {sorted(table - read)}"


def test_docs_link_to_each_other_and_exist():
    for name in ("architecture.md", "design.md", "settings.md", "CONTRIBUTING.md"):
        text = (DOCS / name).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([A-Za-z_]+\.md)\)", text):
            assert (DOCS / target).is_file(), f"{name} links to missing {target}"
