"""The README stays true: its ops table is the code's."""

from pathlib import Path

from snncc.frontend.support import markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_readme_ops_table_matches_the_code():
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- ops-table -->\n") + len("<!-- ops-table -->\n")
    end = text.index("\n<!-- /ops-table -->")
    assert text[start:end] == markdown_table()


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("make demo")
    assert first_block.splitlines()[1].startswith("make test")
    assert "make test" in (ROOT / ".ci" / "run").read_text()
