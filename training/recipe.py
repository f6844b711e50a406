"""Recipes: a training run (or an evaluation) as a TOML file, with single fields overridden
from the command line (`--set optim.lr=1e-5`).

A recipe's sections group the fields of `TrainJob` (`[model]`, `[data]`, `[optim]`,
`[run]`) or of `EvalJob` (`[evaluate]` with `[[evaluate.sets]]`); a field that the job does
not know, a value of the wrong type or a missing required field is one clear error naming
the file and the field. Relative paths in a recipe resolve against `--data-root` (default:
the working directory), so one recipe serves every machine that holds the datasets.
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

RECIPES = Path(__file__).resolve().parent / "recipes"


class RecipeError(ValueError):
    pass


def find_recipe(name: str | Path) -> Path:
    """A file, or the name of a shipped recipe (`k400-b16-supervised`)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = RECIPES / f"{name}.toml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in RECIPES.glob("*.toml")))
    raise RecipeError(f"no recipe {str(name)!r}: not a file, nor a shipped recipe ({names})")


def read_recipe(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"recipe {path}: not valid TOML ({err})") from None


def flatten(recipe: dict[str, Any], sections: tuple[str, ...], where: str) -> dict[str, Any]:
    """`{"model": {"preset": ...}, ...}` -> `{"preset": ...}`; unknown sections are errors."""
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        if not isinstance(value, dict):  # a field outside any section (description)
            flat[key] = value
            continue
        if key not in sections:
            raise RecipeError(f"{where}: unknown section [{key}] (known: {', '.join(sections)})")
        for name, item in value.items():
            if name in flat:
                raise RecipeError(f"{where}: {name} is set twice")
            flat[name] = item
    return flat


def apply_overrides(flat: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`section.field=value` (or `field=value`), the value read as TOML when it parses
    (numbers, booleans, lists), else as a string."""
    out = dict(flat)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise RecipeError(f"--set {item!r}: expected field=value, e.g. optim.lr=1e-5")
        name = key.strip().split(".")[-1]
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[name] = value
    return out


def build(cls, values: dict[str, Any], where: str, base: Path | None = None):
    """An instance of the dataclass `cls` from `values`, each checked against its type;
    relative paths resolved against `base`."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RecipeError(
            f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(value, hints[name], f"{where}: {name}", base)
    missing = [n for n, f in known.items() if n not in kwargs and f.default is MISSING
               and f.default_factory is MISSING]  # fmt: skip
    if missing:
        raise RecipeError(f"{where}: {missing[0]} is required")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str, base: Path | None) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where, base)
            except RecipeError as err:
                errors.append(str(err))
        raise RecipeError(errors[0])
    if hint is Path:
        if not isinstance(value, str | Path):
            raise RecipeError(f"{where} must be a path (a string), not {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() or base is None else base / path
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where} must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where} must be a whole number, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecipeError(f"{where} must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where} must be a string, not {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise RecipeError(f"{where} must be a list, not {value!r}")
        inner = [a for a in args if a is not Ellipsis]
        if Ellipsis not in args and len(value) != len(inner):
            raise RecipeError(f"{where} must hold {len(inner)} values, not {len(value)}")
        kinds = inner * len(value) if Ellipsis in args else inner
        return tuple(_coerce(v, k, where, base) for v, k in zip(value, kinds))
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where} must be a list, not {value!r}")
        return [_coerce(v, args[0], where, base) for v in value]
    return value
