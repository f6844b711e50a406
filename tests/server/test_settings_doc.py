"""The README's settings table and the settings class name the same settings."""

import re
from pathlib import Path

from server.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table_and_nothing_else():
    text = README.read_text()
    table = text[text.index("### Settings") :]
    table = table[: table.index("\n### ")]
    documented = {name.lower() for name in re.findall(r"`ALT_([A-Z0-9_]+)`", table)}
    fields = set(Settings.model_fields)
    assert documented == fields, (
        f"missing in the README: {sorted(fields - documented)}; "
        f"not settings: {sorted(documented - fields)}"
    )
