"""Promises the documentation keeps: the README's settings table names every setting, and the
README and docs/ point only at files that are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.refusals import variable_of
from api.settings import Settings

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FILE_NAMED = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md)\b")
_SETTING = re.compile(r"`((?:COINBOOKS)?_[A-Z0-9_]+|DATABASE_URL)`")


def _settings_in_readme() -> set[str]:
    """The variables the README's settings table names (``COINBOOKS_MAX_QUERY_DEPTH`` /
    ``_TOKENS`` names ``COINBOOKS_MAX_QUERY_TOKENS`` too)."""
    named: set[str] = set()
    for row in (ROOT / "README.md").read_text().splitlines():
        if not row.startswith("| `"):
            continue
        first_cell = row.split("|")[1]
        whole = ""
        for name in _SETTING.findall(first_cell):
            whole = whole.rpartition("_")[0] + name if name.startswith("_") else name
            named.add(whole)
    return named


def test_the_readme_names_every_setting() -> None:
    variables = {variable_of(field) for field in Settings.model_fields}
    assert sorted(variables - _settings_in_readme()) == []


def _targets(document: Path) -> list[tuple[str, Path]]:
    """Each relative link of ``document`` and each file it names in its text, as a path."""
    text = document.read_text()
    found = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # an address elsewhere, or a heading of the same page
        found.append((target, document.parent / target.split("#")[0]))
    for name in _FILE_NAMED.findall(text):
        beside, at_root = document.parent / name, ROOT / name
        found.append((name, beside if beside.exists() else at_root))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_documents_point_only_at_files_in_the_repository(document: Path) -> None:
    missing = [target for target, path in _targets(document) if not path.exists()]
    assert missing == []
