"""The settings page (docs/settings.md) and the settings class name the same settings."""

import re
from pathlib import Path

from server.settings import Settings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_every_setting_is_in_the_table_and_nothing_else():
    text = PAGE.read_text()
    table = text[: text.index("\n## ")]
    documented = {name.lower() for name in re.findall(r"`ALT_([A-Z0-9_]+)`", table)}
    fields = set(Settings.model_fields)
    assert documented == fields, (
        f"missing on the page: {sorted(fields - documented)}; "
        f"not settings: {sorted(documented - fields)}"
    )


def _stated(text: str):
    """A default as the table writes it, or None where it is said in words."""
    text = text.strip()
    if "<" in text:  # a placeholder: `<checkpoint>/samples`
        return None
    if text.startswith("`") and text.endswith("`"):
        return text.strip("`")
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"\d+·\d+", text):
        a, b = text.split("·")
        return float(int(a) * int(b))
    return None


def test_the_table_states_the_settings_defaults():
    text = PAGE.read_text()
    table = text[: text.index("\n## ")]
    checked = 0
    for row in re.findall(r"^\| (`ALT_.+?) \| (.+?) \|", table, re.M):
        names = re.findall(r"`ALT_([A-Z0-9_]+)`", row[0])
        defaults = row[1].split(" / ") if len(names) > 1 else [row[1]]
        assert len(defaults) == len(names), row
        for name, stated in zip(names, defaults):
            want = _stated(stated)
            if want is None:
                continue
            default = Settings.model_fields[name.lower()].default
            got = float(default) if isinstance(want, float) else default
            if isinstance(default, Path):  # the shipped default, found beside the package
                got = want if str(default).endswith(want) else str(default)
            got = str(got) if isinstance(want, str) else got
            assert got == want, f"ALT_{name}: the page says {stated}, the class {default!r}"
            checked += 1
    assert checked >= 20
