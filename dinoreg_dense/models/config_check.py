"""Validation of option dicts (``test_cfg``, ``train_cfg``) when a model is built."""

import difflib
from collections.abc import Mapping
from typing import Any


def check_options(name: str, given: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict:
    """``defaults`` updated with ``given``, refusing keys that ``defaults`` does not have.

    Args:
        name: where the options come from, for the message (e.g. ``"model.test_cfg"``).
        given: the user's options, or None.
        defaults: every valid key with its default value.

    Returns:
        A new dict with every key of ``defaults``.

    Raises:
        ValueError: an unknown key; the message names it, the nearest valid key and all of them.
    """
    options = dict(defaults)
    for key, value in (given or {}).items():
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(
                f"unknown key '{key}' in {name}{hint}; valid keys: {', '.join(sorted(defaults))}"
                if defaults
                else f"unknown key '{key}' in {name}: it takes no options"
            )
        options[key] = value
    return options
