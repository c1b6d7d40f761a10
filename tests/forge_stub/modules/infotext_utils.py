"""modules.infotext_utils stand-in: quote/unquote, parse_generation_parameters, paste bindings (Gradio only in
connect_paste_params_buttons, which needs it as Forge's does)."""
from __future__ import annotations

import json
import re

from modules import shared

re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
# Neo's key pattern (any word characters, whitespace, '-' or '/') and its CFG finder
_re_param_neo = re.compile(r'\s*([\w\s\-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_re_cfg_neo = re.compile(r"CFG scale:\s*([\d.]+)")

paste_fields: dict = {}
registered_param_bindings: list = []


class PasteField(tuple):
    def __new__(cls, component, target, *, api=None):
        return super().__new__(cls, (component, target))

    def __init__(self, component, target, *, api=None):
        super().__init__()
        self.api = api
        self.component = component
        self.label = target if isinstance(target, str) else None
        self.function = target if callable(target) else None


class ParamBinding:
    def __init__(self, paste_button, tabname, source_text_component=None, source_image_component=None,
                 source_tabname=None, override_settings_component=None, paste_field_names=None):
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component
        self.source_tabname = source_tabname
        self.override_settings_component = override_settings_component
        self.paste_field_names = paste_field_names or []


def register_paste_params_button(binding: ParamBinding):
    registered_param_bindings.append(binding)


def create_buttons(tabs_list):
    """One "Send to <tab>" button per tab (fake components; no Gradio)."""
    from modules.ui_components import ToolButton

    return {tab: ToolButton(f"Send to {tab}", elem_id=f"{tab}_tab") for tab in tabs_list}


def _bind_buttons(buttons, send_image, send_generate_info):
    """Forge's old-style binding (absent in Neo): one ParamBinding per tab; a string is a source tab name,
    anything else a source text component."""
    for tabname, button in buttons.items():
        from_tab = send_generate_info if isinstance(send_generate_info, str) else None
        text_component = None if isinstance(send_generate_info, str) else send_generate_info
        register_paste_params_button(ParamBinding(paste_button=button, tabname=tabname,
                                                  source_text_component=text_component,
                                                  source_image_component=send_image, source_tabname=from_tab))


bind_buttons = _bind_buttons
_SETTING_NAME_MAPPING = [("VAE/TE", "forge_additional_modules")]  # Forge's only entry left
infotext_to_setting_name_mapping = list(_SETTING_NAME_MAPPING)


def _apply_variant(variant):
    """Stub-only (stub_control.set_variant): Neo's module has no bind_buttons and no
    infotext_to_setting_name_mapping; Forge's (and Classic's) has both."""
    module = globals()
    if variant == "neo":
        module.pop("bind_buttons", None)
        module.pop("infotext_to_setting_name_mapping", None)
    else:
        module["bind_buttons"] = _bind_buttons
        module.setdefault("infotext_to_setting_name_mapping", list(_SETTING_NAME_MAPPING))


def connect_paste_params_buttons():
    """Forge wires every registered binding once its UI is built (real Gradio needed, inside its Blocks): a click
    on the binding's button
    - with a source image and a destination tab that has an input image (img2img, inpaint): that image goes to
      it, and its width and height to the tab's `Size-1`/`Size-2` fields when it has them and `opts.send_size`
      (not for inpaint); from a gr.Gallery through the page's `extract_image_from_gallery`;
    - with a source text: the text parsed as an infotext (`parse_generation_parameters`, then the
      infotext_pasted callbacks) fills the destination's paste fields, each converted to its field's type;
    - with a source tab: prompt, negative prompt, steps (and seed with `opts.send_seed`) are copied;
    - then the page switches to the destination tab (`switch_to_<tab>` in the page's JS).
    A binding to a tab without paste fields raises KeyError, as in Forge."""
    import gradio as gr

    for binding in registered_param_bindings:
        target = paste_fields[binding.tabname]
        fields = target["fields"]
        override = binding.override_settings_component or target["override_settings_component"]
        width = next((c for c, name in fields or [] if name == "Size-1"), None)
        height = next((c for c, name in fields or [] if name == "Size-2"), None)
        if binding.source_image_component is not None and target["init_img"] is not None:
            with_size = width is not None and binding.tabname != "inpaint"
            from_gallery = isinstance(binding.source_image_component, gr.Gallery)
            binding.paste_button.click(
                fn=send_image_and_dimensions if with_size else (image_from_url_text if from_gallery else _same),
                js="extract_image_from_gallery" if from_gallery else None,
                inputs=[binding.source_image_component],
                outputs=[target["init_img"], width, height] if with_size else [target["init_img"]],
                show_progress=False)
        if binding.source_text_component is not None and fields is not None:
            _connect_paste(binding.paste_button, fields, binding.source_text_component, override)
        if binding.source_tabname is not None and fields is not None:
            names = ["Prompt", "Negative prompt", "Steps", "Face restoration"] + \
                (["Seed"] if shared.opts.send_seed else []) + binding.paste_field_names
            binding.paste_button.click(
                fn=lambda *x: x, show_progress=False,
                inputs=[c for c, name in paste_fields[binding.source_tabname]["fields"] if name in names],
                outputs=[c for c, name in fields if name in names])
        binding.paste_button.click(fn=None, js=f"switch_to_{binding.tabname}", inputs=None, outputs=None,
                                   show_progress=False)


def _same(x):
    return x


def send_image_and_dimensions(x):
    """The image (RGBA made RGB) and, with `opts.send_size`, its width and height (else no change)."""
    import gradio as gr
    from PIL import Image

    image = x if isinstance(x, Image.Image) else image_from_url_text(x)
    if isinstance(image, Image.Image) and image.mode == "RGBA":
        image = image.convert("RGB")
    if shared.opts.send_size and isinstance(image, Image.Image):
        return image, image.width, image.height
    return image, gr.update(), gr.update()


def _connect_paste(button, fields, source, override):
    import gradio as gr

    from modules import script_callbacks

    def paste(text):
        params = parse_generation_parameters(text or "")
        script_callbacks.infotext_pasted_callback(text, params)
        out = []
        for component, key in fields:
            value = key(params) if callable(key) else params.get(key)
            if value is None:
                out.append(gr.update())
            elif isinstance(value, dict) and value.get("__type__") == "update":
                out.append(value)
            else:
                kind = type(component.value)
                try:
                    converted = False if kind is bool and value == "False" else \
                        float(value) if kind is int else kind(value)
                    out.append(gr.update(value=converted))
                except Exception:  # a value the field cannot hold: left as it is
                    out.append(gr.update())
        return out

    outputs = [c for c, _ in fields]
    if override is not None:  # the stand-in has no settings in infotexts to override: the dropdown stays hidden
        outputs.append(override)
        button.click(fn=lambda text: paste(text) + [gr.update(value=[], choices=[], visible=False)],
                     inputs=[source], outputs=outputs, show_progress=False)
    else:
        button.click(fn=paste, inputs=[source], outputs=outputs, show_progress=False)


def add_paste_fields(tabname, init_img, fields, override_settings_component=None):
    if fields:
        fields = [f if isinstance(f, PasteField) else PasteField(*f) for f in fields]
    paste_fields[tabname] = {"init_img": init_img, "fields": fields,
                             "override_settings_component": override_settings_component}


def quote(text):
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def image_from_url_text(filedata):
    """Simplified: accepts a PIL image or a file path; returns a PIL image or None."""
    if filedata is None:
        return None
    if isinstance(filedata, str):
        from PIL import Image

        return Image.open(filedata)
    return filedata


def parse_generation_parameters(x: str, skip_fields: list | None = None):
    """Infotext text -> dict. Styles are not extracted (the stub has no style database). Neo parses its own way
    (see _parse_neo)."""
    if skip_fields is None:
        skip_fields = shared.opts.infotext_skip_pasting
    import stub_control

    if stub_control.current_variant() == "neo":
        return _parse_neo(x, skip_fields)

    res = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False

    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""

    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt

    for k, v in re_param.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                v = unquote(v)
            m = re_imagesize.match(v)
            if m is not None:
                res[f"{k}-1"] = m.group(1)
                res[f"{k}-2"] = m.group(2)
            else:
                res[k] = v
        except Exception:
            print(f"Error parsing \"{k}: {v}\"")

    defaults = {
        "Clip skip": "1",
        "Hires sampler": "Use same sampler",
        "Hires schedule type": "Use same scheduler",
        "Hires checkpoint": "Use same checkpoint",
        "Hires prompt": "",
        "Hires negative prompt": "",
        "RNG": "GPU",  # Neo (whose infotext always has RNG) pastes a missing one as GPU too
        "Schedule type": "Automatic",
    }
    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    for k, v in defaults.items():
        res.setdefault(k, v)

    for key in skip_fields:
        res.pop(key, None)
    return res


def _parse_neo(x: str, skip_fields: list):
    """Neo's reading of an infotext, where it differs from Forge's:
    - a last line that mentions "flux" anywhere (any case) with `CFG scale` above 1 is read as a Civitai Flux
      line: `CFG scale: X` becomes `CFG scale: 1.0, Distilled CFG Scale: X`; `Sampler: Undefined,` becomes
      Euler/Simple; `, width:`/`, height:` become Size-1/Size-2;
    - `Noise Schedule` is ignored; `Shift` is read as Distilled CFG Scale (`Hires Shift` likewise);
    - defaults for missing keys: Sampler Euler, Schedule type Simple, RNG CPU, the Hires ones, MaHiRo False,
      Rescale CFG 0.0 (no Clip skip default: `Clip skip` is always dropped);
    - `Model` is dropped when it names the selected checkpoint; `VAE`, `Module N`, `Hires Module N` become
      VAE/TE lists (the stand-in knows no modules) and `Hires VAE/TE` is always set."""
    *lines, lastline = x.strip().split("\n")
    if len(_re_param_neo.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""

    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            line = line.replace("Negative prompt:", "").strip()
            in_negative = True
        (negative_lines if in_negative else prompt_lines).append(line)

    if "flux" in lastline.lower():
        cfg = _re_cfg_neo.search(lastline)
        if cfg and float(cfg.group(1)) > 1.0:
            lastline = lastline.replace("CFG scale: ", "CFG scale: 1.0, Distilled CFG Scale: ")
    lastline = lastline.replace("Sampler: Undefined,", "Sampler: Euler, Schedule type: Simple,")
    lastline = lastline.replace(", width:", ", Size-1:").replace(", height:", ", Size-2:")

    res = {}
    for k, v in _re_param_neo.findall(lastline):
        if k == "Noise Schedule":
            continue
        v = unquote(v)
        size = re_imagesize.match(v)
        if size is not None:
            res[f"{k}-1"], res[f"{k}-2"] = size.group(1), size.group(2)
        else:
            res[k] = v
    res["Prompt"] = "\n".join(prompt_lines)
    res["Negative prompt"] = "\n".join(negative_lines)

    for key, value in (("Sampler", "Euler"), ("Schedule type", "Simple"), ("RNG", "CPU")):
        res.setdefault(key, value)
    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    for key, value in (("Hires sampler", "Use same sampler"), ("Hires schedule type", "Use same scheduler"),
                       ("Hires checkpoint", "Use same checkpoint"), ("Hires prompt", ""),
                       ("Hires negative prompt", ""), ("MaHiRo", False), ("Rescale CFG", 0.0)):
        res.setdefault(key, value)
    if "Shift" in res:
        res["Distilled CFG Scale"] = res.pop("Shift")
    if "Hires Shift" in res:
        res["Hires Distilled CFG Scale"] = res.pop("Hires Shift")
    if "sd_model_name" in res:
        res["Model"] = res.pop("sd_model_name")
    import os

    if res.get("Model") == os.path.splitext(shared.opts.sd_model_checkpoint or "")[0]:
        res.pop("Model")
    for key in [*skip_fields, "Clip skip", "CLIP_stop_at_last_layers"]:
        res.pop(key, None)

    modules = [res.pop("VAE")] if "VAE" in res else []
    for key in [k for k in res if k.startswith(("Module ", "Hires Module "))]:
        res.pop(key)  # names of modules this install does not have: dropped
    if modules:
        res["VAE/TE"] = modules
    res["Hires VAE/TE"] = ["Use same choices"]
    return res


def _apply_current_variant():
    import stub_control

    _apply_variant(stub_control.current_variant())


_apply_current_variant()  # imported after a switch to Neo: already without Neo's missing names
