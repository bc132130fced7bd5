"""Numeric inputs whose API values are checked by name.

Gradio's own ``Slider``/``Number`` preprocess compares the payload with the bounds, so a non-number sent
through the API (``k="abc"`` from ``gradio_client``) fails with ``TypeError`` inside Gradio and the client
gets the generic "The upstream Gradio app has raised an exception". These inputs refuse such a value first,
with a ``gr.Error`` naming the field. They are Gradio's own components with the check put in front of their
preprocess on the instance (a subclass would make Gradio's component metaclass write a ``.pyi`` file next to
this module at import).
"""
from __future__ import annotations

import math
from typing import Any, TypeVar

import gradio as gr

Numeric = TypeVar("Numeric", gr.Number, gr.Slider)


def checked_number(value: Any, label: str | None) -> Any:
    """``value`` when it is a finite number (or None); otherwise a ``gr.Error`` naming the field ``label``."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
        return value
    raise gr.Error(f"{label or 'This field'} must be a number (got a {type(value).__name__}).")


def _checked(component: Numeric) -> Numeric:
    preprocess = component.preprocess
    component.preprocess = lambda payload: preprocess(checked_number(payload, component.label))
    return component


def number_input(*args: Any, **kwargs: Any) -> gr.Number:
    """``gr.Number(...)`` whose preprocess names the field when the value is not a number."""
    return _checked(gr.Number(*args, **kwargs))


def slider_input(*args: Any, **kwargs: Any) -> gr.Slider:
    """``gr.Slider(...)`` whose preprocess names the field when the value is not a number."""
    return _checked(gr.Slider(*args, **kwargs))
