"""modules.script_callbacks stand-in: registration with keyword-only name=, dispatchers catching exceptions."""
from __future__ import annotations

import inspect
import os
from collections import namedtuple
from dataclasses import dataclass

from modules import errors

ScriptCallback = namedtuple("ScriptCallback", ["script", "callback", "name"])


class ImageSaveParams:
    def __init__(self, image, p, filename, pnginfo):
        self.image = image
        self.p = p
        self.filename = filename
        self.pnginfo = pnginfo


class ImageGridLoopParams:
    def __init__(self, imgs, cols, rows):
        self.imgs = imgs
        self.cols = cols
        self.rows = rows


@dataclass
class BeforeTokenCounterParams:
    prompt: str
    steps: int
    styles: list
    is_positive: bool = True


callback_map = {
    "callbacks_app_started": [],
    "callbacks_model_loaded": [],
    "callbacks_ui_tabs": [],
    "callbacks_ui_train_tabs": [],
    "callbacks_ui_settings": [],
    "callbacks_before_image_saved": [],
    "callbacks_image_saved": [],
    "callbacks_extra_noise": [],
    "callbacks_cfg_denoiser": [],
    "callbacks_cfg_denoised": [],
    "callbacks_cfg_after_cfg": [],
    "callbacks_before_component": [],
    "callbacks_after_component": [],
    "callbacks_image_grid": [],
    "callbacks_infotext_pasted": [],
    "callbacks_script_unloaded": [],
    "callbacks_before_ui": [],
    "callbacks_on_reload": [],
    "callbacks_list_optimizers": [],
    "callbacks_list_unets": [],
    "callbacks_before_token_counter": [],
}


def _caller_filename():
    here = os.path.abspath(__file__)
    for frame in inspect.stack()[1:]:
        if os.path.abspath(frame.filename) != here:
            return frame.filename
    return "unknown"


def _namebase(filename):
    folder = os.path.dirname(os.path.abspath(filename))
    ext = os.path.basename(os.path.dirname(folder)) if os.path.basename(folder) == "scripts" else "unknown"
    return f"{ext.lower()}/{os.path.basename(filename)}"


def add_callback(callbacks, fun, *, name=None, category="unknown", filename=None):
    if filename is None:
        filename = _caller_filename()
    unique_callback_name = f"{_namebase(filename)}/{category}"
    if name is not None:
        unique_callback_name += f"/{name}"
    callbacks.append(ScriptCallback(filename, fun, unique_callback_name))


def clear_callbacks():
    for callback_list in callback_map.values():
        callback_list.clear()


def remove_current_script_callbacks():
    filename = _caller_filename()
    for callback_list in callback_map.values():
        for cb in [cb for cb in callback_list if cb.script == filename]:
            callback_list.remove(cb)


def remove_callbacks_for_function(callback_func):
    for callback_list in callback_map.values():
        for cb in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(cb)


def report_exception(c, job):
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


def _run(category, *args):
    for c in list(callback_map["callbacks_" + category]):
        try:
            c.callback(*args)
        except Exception:
            report_exception(c, category)


def app_started_callback(demo, app):
    _run("app_started", demo, app)


def model_loaded_callback(sd_model):
    _run("model_loaded", sd_model)


def ui_tabs_callback():
    res = []
    for c in list(callback_map["callbacks_ui_tabs"]):
        try:
            res += c.callback() or []
        except Exception:
            report_exception(c, "ui_tabs_callback")
    return res


def ui_settings_callback():
    _run("ui_settings")


def before_image_saved_callback(params: ImageSaveParams):
    _run("before_image_saved", params)


def image_saved_callback(params: ImageSaveParams):
    _run("image_saved", params)


def image_grid_callback(params: ImageGridLoopParams):
    _run("image_grid", params)


def infotext_pasted_callback(infotext: str, params: dict):
    _run("infotext_pasted", infotext, params)


def script_unloaded_callback():
    _run("script_unloaded")


def before_ui_callback():
    _run("before_ui")


def before_token_counter_callback(params: BeforeTokenCounterParams):
    _run("before_token_counter", params)


def before_component_callback(component, **kwargs):
    for c in list(callback_map["callbacks_before_component"]):
        try:
            c.callback(component, **kwargs)
        except Exception:
            report_exception(c, "before_component")


def after_component_callback(component, **kwargs):
    for c in list(callback_map["callbacks_after_component"]):
        try:
            c.callback(component, **kwargs)
        except Exception:
            report_exception(c, "after_component")


def _register(category):
    def on(callback, *, name=None):
        add_callback(callback_map["callbacks_" + category], callback, name=name, category=category,
                     filename=_caller_filename())

    on.__name__ = "on_" + category
    return on


on_app_started = _register("app_started")
on_model_loaded = _register("model_loaded")
on_ui_tabs = _register("ui_tabs")
on_ui_train_tabs = _register("ui_train_tabs")
on_ui_settings = _register("ui_settings")
on_before_image_saved = _register("before_image_saved")
on_image_saved = _register("image_saved")
on_extra_noise = _register("extra_noise")
on_cfg_denoiser = _register("cfg_denoiser")
on_cfg_denoised = _register("cfg_denoised")
on_cfg_after_cfg = _register("cfg_after_cfg")
on_before_component = _register("before_component")
on_after_component = _register("after_component")
on_image_grid = _register("image_grid")
on_infotext_pasted = _register("infotext_pasted")
on_script_unloaded = _register("script_unloaded")
on_before_ui = _register("before_ui")
on_list_optimizers = _register("list_optimizers")
on_list_unets = _register("list_unets")
on_before_token_counter = _register("before_token_counter")


def on_before_reload(callback, *, name=None):
    add_callback(callback_map["callbacks_on_reload"], callback, name=name, category="on_reload",
                 filename=_caller_filename())
