"""The user-facing contract (docs/contract.md): every example in it runs against the code."""

import doctest
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "contract.md"


def test_contract_examples_run():
    result = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS,
                              verbose=False, report=True)
    assert result.attempted >= 15 and result.failed == 0


def test_readme_points_inside_the_repository():
    readme = (DOC.parents[1] / "README.md").read_text()
    assert "../shared/" not in readme and "](docs/contract.md)" in readme
