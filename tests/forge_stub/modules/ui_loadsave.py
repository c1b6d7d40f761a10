"""modules.ui_loadsave stand-in: Forge's ui-config.json, the saved default of every tracked component.

What matters to an extension, as the real hosts do it:
- A component inside an extension tab is keyed `<tab id>/<label>/<field>`: sub-tabs, rows and columns add
  nothing to the key, and `elem_id` plays no part. A label-less button is keyed by its text.
- A control returned by a script's ui() is keyed `customscript/<script file>/<tab>/<label>/<field>`.
- The first component with a key stores its default; a later one with the same key *gets that value*
  (when its type accepts it), so two fields labelled "Seed" in one tab share one default.
- Tracked (by exact type): Slider, Radio, Checkbox, Textbox, Number, Dropdown (plus `visible` of buttons).
  lllyasviel Forge never tracks InputAccordion (its check compares against the factory function); Neo does
  (not modelled: the stand-in's script controls are not Gradio components).
"""
from __future__ import annotations

import json
import os


def _choices(component):
    return [c[0] if isinstance(c, tuple) else c for c in (getattr(component, "choices", None) or [])]


class UiLoadsave:
    def __init__(self, filename):
        self.filename = filename
        self.ui_settings = {}
        self.component_mapping = {}
        if os.path.exists(filename):
            with open(filename, encoding="utf8") as fh:
                self.ui_settings = json.load(fh)

    def add_component(self, path, x):
        import gradio as gr

        def apply_field(obj, field, accepts=None):
            key = f"{path}/{field}"
            source = getattr(obj, "custom_script_source", None)
            if source is not None:
                key = f"customscript/{source}/{key}"
            if getattr(obj, "do_not_save_to_config", False):
                return
            saved = self.ui_settings.get(key)
            if saved is None:
                current = getattr(obj, field)
                if isinstance(obj, gr.Textbox) and field == "value" and current is None:
                    current = ""
                self.ui_settings[key] = current
            elif accepts is None or accepts(saved):
                if isinstance(obj, gr.Textbox) and field == "value":
                    saved = str(saved)
                elif isinstance(obj, gr.Number) and field == "value":
                    try:
                        saved = float(saved)
                    except ValueError:
                        return
                setattr(obj, field, saved)
            if field == "value" and key not in self.component_mapping:
                self.component_mapping[key] = obj

        kind = type(x)
        if kind in (gr.Slider, gr.Radio, gr.Checkbox, gr.Textbox, gr.Number, gr.Dropdown, gr.Button) and x.visible:
            apply_field(x, "visible")
        if kind is gr.Slider:
            for field in ("value", "minimum", "maximum", "step"):
                apply_field(x, field)
        elif kind is gr.Radio:
            apply_field(x, "value", lambda v: v in _choices(x))
        elif kind in (gr.Checkbox, gr.Textbox, gr.Number):
            apply_field(x, "value")
        elif kind is gr.Dropdown:
            apply_field(x, "value", lambda v: (all(i in _choices(x) for i in v) if getattr(x, "multiselect", False)
                                               else v in _choices(x)))

    def add_block(self, x, path=""):
        import gradio as gr

        if hasattr(x, "children"):
            if isinstance(x, gr.Tabs) and x.elem_id is not None:
                self.add_component(f"{path}/Tabs@{x.elem_id}", x)
            for child in x.children:
                self.add_block(child, path)
        elif getattr(x, "label", None) is not None:
            self.add_component(f"{path}/{x.label}", x)
        elif isinstance(x, gr.Button) and x.value is not None:
            self.add_component(f"{path}/{x.value}", x)

    def dump_defaults(self):
        with open(self.filename, "w", encoding="utf8") as fh:
            json.dump(self.ui_settings, fh, indent=4, ensure_ascii=False)
