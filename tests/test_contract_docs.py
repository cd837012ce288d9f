"""The repository stands on its own: its contract lives in docs/CONTRACT.md, not in a file it lacks."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MISSING_DOCUMENT = "DESIGN" + ".md"  # spelled in two parts so that this file does not match itself


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in names.splitlines() if not name.endswith((".png", ".sqlite3"))]


def test_no_file_refers_to_a_document_the_repository_does_not_contain() -> None:
    # given every file of the repository
    files = tracked_text_files()
    # when they are searched for the missing design document
    offenders = [
        str(f.relative_to(ROOT)) for f in files if f.is_file() and MISSING_DOCUMENT in f.read_text(errors="ignore")
    ]
    # then none names it
    assert offenders == []


def test_the_readmes_link_the_contract() -> None:
    # given the contract
    assert (ROOT / "docs" / "CONTRACT.md").is_file()
    # then both READMEs link it
    for readme in ("README.md", "README.ko.md"):
        assert "(docs/CONTRACT.md)" in (ROOT / readme).read_text()
