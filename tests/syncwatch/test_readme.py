"""The README's configuration table lists every setting, so the docs cannot drift from the code."""

from __future__ import annotations

from syncwatch.settings import Settings
from tests.conftest import REPO


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`SYNCWATCH_{name.upper()}`" not in readme]
    assert not missing, f"README configuration table lacks: {missing}"
