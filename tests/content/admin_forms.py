"""Submitting admin forms as a browser would: every field with the value the page shows."""

from __future__ import annotations

from typing import Any

from django import forms


def form_as_post_data(form: forms.BaseForm, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for bound in form:
        value = bound.value()
        widget = getattr(bound.field.widget, "widget", bound.field.widget)  # admin wrappers
        if isinstance(widget, forms.MultiWidget):
            for index, part in enumerate(widget.decompress(value) or []):
                data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
        elif isinstance(widget, forms.CheckboxInput):
            if value:
                data[bound.html_name] = "on"
        elif isinstance(value, list | tuple):
            data[bound.html_name] = [str(v) for v in value]
        else:
            data[bound.html_name] = "" if value is None else value
    data.update(overrides)
    return data


def change_page_as_post_data(context: Any, **overrides: Any) -> dict[str, Any]:
    """The whole change page: the main form and every inline formset, as the browser posts it."""
    data = form_as_post_data(context["adminform"].form)
    for inline in context.get("inline_admin_formsets", []):
        formset = inline.formset
        data.update(form_as_post_data(formset.management_form))
        for form in formset.forms:
            data.update(form_as_post_data(form))
    data.update(overrides)
    return data
