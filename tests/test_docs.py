"""The README stays true: its ops table is the code's."""

from pathlib import Path

from snncc.frontend.support import markdown_table, readme_table

ROOT = Path(__file__).resolve().parent.parent


def test_readme_ops_table_matches_the_code():
    """The table is generated from the handlers' own lines (`make docs` rewrites it)."""
    assert readme_table((ROOT / "README.md").read_text()) == markdown_table()


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("make demo")
    assert first_block.splitlines()[1].startswith("make test")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert ci.index("make lint") < ci.index("make test"), "CI checks the code, then tests"
