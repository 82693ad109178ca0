"""The documents for people who work on the project name only files and modules that exist.

A reference is checked when it is written as code (`turtle_core/state/curation.py`, `pages/`,
`tests/test_app_*.py`, `turtle_core.jobs.JOB_WRITES`), or as a relative Markdown link. Names with a
placeholder (`$TURTLE_HOME/...`, `<workspace>/...`, `pages/<name>.py`) are not checked, nor are paths under a
folder that .gitignore names (`.venv/`: made by the set-up, not in the repository).
In fenced blocks (pictures, commands) only paths that start at a top-level entry of the repository count.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["docs/architecture.md", "CONTRIBUTING.md"]
PACKAGES = ("turtle_core", "turtle_ui", "benchmarks", "tests")
EXTENSIONS = {".py", ".md", ".sh", ".toml", ".txt", ".json", ".css", ".png", ".cfg", ".ini", ".csv", ".npz"}
TOP_LEVEL_EXTENSIONS = {".py", ".md", ".toml", ".txt"}

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`([^`]+)`")  # pairs as Markdown does, also across lines
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.*/-]*")
DOTTED = re.compile(rf"(?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)+")
PUNCTUATION = "()[]{},;:'\"`"


def ignored_folders() -> tuple[str, ...]:
    """Folders .gitignore names (`name/` lines without a wildcard): made by the set-up or by runs."""
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return tuple(line.strip("/") + "/" for line in lines if line.endswith("/") and "*" not in line)


def is_path(token: str) -> bool:
    """A repository path: a relative name with a folder part that ends in `/` or in a file extension, or a
    top-level file of the kinds the repository keeps there (`app.py`, `pyproject.toml`; not `scan.json`,
    `curation.npz` and the like, which a project writes)."""
    if not PATH.fullmatch(token):
        return False
    if "/" not in token:
        return Path(token).suffix in TOP_LEVEL_EXTENSIONS
    return token.endswith("/") or Path(token).suffix in EXTENSIONS


def path_exists(token: str) -> bool:
    if token.startswith(ignored_folders()):
        return True
    if "*" in token:
        return any(ROOT.glob(token.rstrip("/")))
    target = ROOT / token
    return target.is_dir() if token.endswith("/") else target.is_file()


def dotted_exists(name: str) -> bool:
    """`package.module` (a module or package of the repository), optionally followed by one top-level name
    defined in it (`turtle_core.jobs.JOB_WRITES`) and attributes of that name (`Curation.state_id`)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        source = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if not source.is_file():
            continue
        rest = parts[end:]
        return not rest or rest[0] in top_level_names(source) or (base.is_dir() and (base / rest[0]).is_dir())
    return False


def top_level_names(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source.read_text("utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def references(text: str, folder: Path = ROOT) -> list[tuple[str, bool]]:
    """(reference, exists) for every reference in a document whose folder is `folder`."""
    found: list[tuple[str, bool]] = []
    top_level = {entry.name for entry in ROOT.iterdir()}
    for block in FENCE.findall(text):
        for token in (word.strip(PUNCTUATION) for word in block.split()):
            if is_path(token) and token.split("/")[0] in top_level:
                found.append((token, path_exists(token)))
    prose = FENCE.sub("", text)
    for code in CODE.findall(prose):
        for token in (word.strip(PUNCTUATION) for word in code.split()):
            if is_path(token):
                found.append((token, path_exists(token)))
            elif DOTTED.fullmatch(token.removesuffix("()")):
                found.append((token, dotted_exists(token.removesuffix("()"))))
    for target in LINK.findall(prose):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        resolved = (folder / target.split("#")[0]).resolve()
        found.append((target, resolved.is_relative_to(ROOT) and resolved.exists()))
    return found


def missing(text: str, folder: Path = ROOT) -> list[str]:
    return sorted({reference for reference, exists in references(text, folder) if not exists})


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_file_and_module_a_document_names_exists(document: str) -> None:
    path = ROOT / document
    found = references(path.read_text("utf-8"), path.parent)
    assert len(found) >= 10  # the extraction found the document's references
    gone = missing(path.read_text("utf-8"), path.parent)
    assert not gone, f"{document} names what does not exist: {', '.join(gone)}"


def test_the_architecture_lists_every_edit() -> None:
    from turtle_core.state.edits import EDIT_KINDS

    text = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    assert sorted(kind for kind in EDIT_KINDS if f"`{kind}`" not in text) == []


def test_the_check_catches_names_that_do_not_exist() -> None:
    text = (
        "Real: `turtle_core/state/edits.py`, `pages/`, `tests/test_app_*.py`, `turtle_core.jobs.JOB_WRITES`, "
        "`$TURTLE_HOME/embeddings/`, `.venv/bin/ruff`, `pages/<name>.py`, `app.py`, `curation.npz`, "
        "[layers](tests/test_layers.py).\n"
        "Bogus: `turtle_core/state/edit.py`, `turtle_ui/nowhere/`, `tests/test_nothing_*.py`, `apps.py`, "
        "`turtle_core.jobs.NO_SUCH_NAME`, `turtle_core.no_module`, [gone](docs/gone.md).\n"
        "```\nbash scripts/setup.sh && bash scripts/no_setup.sh   # ingest/scan.py is a short name\n```\n"
    )
    assert missing(text) == [
        "apps.py",
        "docs/gone.md",
        "scripts/no_setup.sh",
        "tests/test_nothing_*.py",
        "turtle_core.jobs.NO_SUCH_NAME",
        "turtle_core.no_module",
        "turtle_core/state/edit.py",
        "turtle_ui/nowhere/",
    ]
