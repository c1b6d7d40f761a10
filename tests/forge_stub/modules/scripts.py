"""modules.scripts stand-in: Script base class, ScriptRunner with one dispatcher per hook."""
from __future__ import annotations

import inspect
import os
import re
import sys
from collections import namedtuple
from dataclasses import dataclass, field

from modules import errors, shared

AlwaysVisible = object()

_MISSING = object()


class MaskBlendArgs:
    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None):
        self.current_latent = current_latent
        self.nmask = nmask
        self.init_latent = init_latent
        self.mask = mask
        self.blended_latent = blended_latent
        self.denoiser = denoiser
        self.is_final_blend = denoiser is None
        self.sigma = sigma


class PostSampleArgs:
    def __init__(self, samples):
        self.samples = samples


class PostprocessImageArgs:
    """Forge: PostprocessImageArgs(image, index). The Classic variant constructs it without index (no attribute)."""

    def __init__(self, image, index=_MISSING):
        self.image = image
        if index is not _MISSING:
            self.index = index


class PostProcessMaskOverlayArgs:
    def __init__(self, index, mask_for_overlay, overlay_image):
        self.index = index
        self.mask_for_overlay = mask_for_overlay
        self.overlay_image = overlay_image


class PostprocessBatchListArgs:
    def __init__(self, images):
        self.images = images


@dataclass
class OnComponent:
    component: object


@dataclass
class ScriptArg:
    label: str = ""
    value: object = None
    minimum: object = None
    maximum: object = None
    step: object = None
    choices: object = None


@dataclass
class ScriptInfo:
    name: str = ""
    is_img2img: bool = False
    is_alwayson: bool = False
    args: list = field(default_factory=list)


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    sorting_priority = 0
    infotext_fields = None
    paste_field_names = None
    api_info = None
    on_before_component_elem_id = None
    on_after_component_elem_id = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        pass

    def on_mask_blend(self, p, mba: MaskBlendArgs, *args):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs, *args):
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def on_before_component(self, callback, *, elem_id):
        if self.on_before_component_elem_id is None:
            self.on_before_component_elem_id = []
        self.on_before_component_elem_id.append((elem_id, callback))

    def on_after_component(self, callback, *, elem_id):
        if self.on_after_component_elem_id is None:
            self.on_after_component_elem_id = []
        self.on_after_component_elem_id.append((elem_id, callback))

    def describe(self):
        return ""

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"

    def before_hr(self, p, *args):
        pass


class ScriptBuiltinUI(Script):
    setup_for_ui_only = True

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabname = (("img2img" if self.is_img2img else "txt2img") + "_") if need_tabname else ""
        return f"{tabname}{item_id}"


current_basedir = shared.script_path


def basedir():
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])

scripts_data: list = []
postprocessing_scripts_data: list = []
scripts_txt2img = None
scripts_img2img = None
scripts_postproc = None
scripts_current = None


def list_scripts(scriptdirname, extension):
    """The script files of every active extension, in load order: extensions by folder name, then files by
    name (Forge also reorders by metadata.ini's Before/After; the stand-in does not)."""
    from modules import extensions

    found = []
    for ext in extensions.active():
        found += ext.list_files(scriptdirname, extension)
    return found


def load_scripts():
    """Forge's script loading, step by step (modules/scripts.py `load_scripts`):

    1. forget every script class and clear every callback (a UI reload runs this again: callbacks registered at
       import are registered once, not twice);
    2. put every extension's root folder on sys.path for good;
    3. execute each file as a module of its own (script_loading.load_module: not in sys.modules), with its
       extension root on sys.path again and `basedir()` pointing at it;
    4. after each file, put back the sys.path of step 2: whatever a script added to sys.path while it loaded
       (its own `scripts/` folder, say) is gone when its handlers run later. Modules it imported stay in
       sys.modules.
    """
    global current_basedir, scripts_txt2img, scripts_img2img
    from modules import script_callbacks, script_loading

    scripts_data.clear()
    postprocessing_scripts_data.clear()
    script_callbacks.clear_callbacks()
    scripts_list = list_scripts("scripts", ".py")
    for s in scripts_list:
        if s.basedir not in sys.path:
            sys.path = [s.basedir] + sys.path
    syspath = sys.path
    for scriptfile in scripts_list:
        try:
            if scriptfile.basedir != shared.script_path:
                sys.path = [scriptfile.basedir] + sys.path
            current_basedir = scriptfile.basedir
            module = script_loading.load_module(scriptfile.path)
            for script_class in module.__dict__.values():
                if inspect.isclass(script_class) and issubclass(script_class, Script):
                    scripts_data.append(ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module))
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
        finally:
            sys.path = syspath
            current_basedir = shared.script_path
    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception:
        errors.report(f"Error calling: {filename}/{funcname}", exc_info=True)
    return default


class ScriptRunner:
    def __init__(self):
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []
        self.titles = []
        self.title_map = {}
        self.infotext_fields = []
        self.paste_field_names = []
        self.inputs = [None]
        self.callback_map = {}
        self.is_img2img = False

    def initialize_scripts(self, is_img2img):
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        self.is_img2img = is_img2img
        for script_data in scripts_data:
            script = script_data.script_class()
            script.filename = script_data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)
        self.callback_map.clear()

    def prepare_ui(self):
        self.inputs = [None]

    def create_script_ui(self, script):
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        try:
            self.create_script_ui_inner(script)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    def create_script_ui_inner(self, script):
        controls = wrap_call(script.ui, script.filename, "ui", script.is_img2img)
        if controls is None:
            return
        script.name = wrap_call(script.title, script.filename, "title", default=script.filename).lower()
        api_args = []
        for control in controls:
            control.custom_script_source = os.path.basename(script.filename)
            arg_info = ScriptArg(label=control.label or "")
            for attr in ("value", "minimum", "maximum", "step"):
                v = getattr(control, attr, None)
                if v is not None:
                    setattr(arg_info, attr, v)
            choices = getattr(control, "choices", None)
            if choices is not None:
                arg_info.choices = [x[0] if isinstance(x, tuple) else x for x in choices]
            api_args.append(arg_info)
        script.api_info = ScriptInfo(name=script.name, is_img2img=script.is_img2img, is_alwayson=script.alwayson,
                                     args=api_args)
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names
        self.inputs += controls
        script.controls = controls
        script.args_to = len(self.inputs)

    def setup_ui_for_section(self, section, scriptlist=None):
        if scriptlist is None:
            scriptlist = self.alwayson_scripts
        for script in scriptlist:
            if script.alwayson and script.section != section:
                continue
            self.create_script_ui(script)

    def setup_ui(self):
        """Simplified: no Gradio. AlwaysOn UIs of every section first, then the dropdown slot 0, then selectable."""
        all_titles = [wrap_call(s.title, s.filename, "title") or s.filename for s in self.scripts]
        self.title_map = {title.lower(): script for title, script in zip(all_titles, self.scripts)}
        self.titles = [wrap_call(s.title, s.filename, "title") or f"{s.filename} [error]"
                       for s in self.selectable_scripts]
        self.prepare_ui()
        for script in self.alwayson_scripts:
            self.create_script_ui(script)
        self.inputs[0] = None  # stands for the "Script" dropdown (type="index")
        self.setup_ui_for_section(None, self.selectable_scripts)
        return self.inputs

    def run(self, p, *args):
        script_index = args[0] if args else 0
        if script_index == 0 or script_index is None:
            return None
        script = self.selectable_scripts[script_index - 1]
        if script is None:
            return None
        script_args = args[script.args_from:script.args_to]
        processed = script.run(p, *script_args)
        shared.total_tqdm.clear()
        return processed

    def ordered_scripts(self, method_name):
        """AlwaysOn scripts whose class overrides `method_name`, in load order."""
        if method_name not in self.callback_map:
            base = getattr(Script, method_name)
            self.callback_map[method_name] = [
                s for s in self.alwayson_scripts if getattr(type(s), method_name, base) is not base
            ]
        return self.callback_map[method_name]

    def _dispatch(self, method_name, p, *leading, scripts=None, **kwargs):
        for script in self.ordered_scripts(method_name) if scripts is None else scripts:
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                getattr(script, method_name)(p, *leading, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {method_name}: {script.filename}", exc_info=True)

    def setup_scrips(self, p, *, is_ui=True):
        for script in self.ordered_scripts("setup"):
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                script.setup(p, *script_args)
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)

    def before_process(self, p):
        self._dispatch("before_process", p)

    def process(self, p):
        self._dispatch("process", p)

    def process_before_every_sampling(self, p, **kwargs):
        # Forge calls this one on every AlwaysOn script, overriding or not.
        self._dispatch("process_before_every_sampling", p, scripts=list(self.alwayson_scripts), **kwargs)

    def before_process_batch(self, p, **kwargs):
        self._dispatch("before_process_batch", p, **kwargs)

    def after_extra_networks_activate(self, p, **kwargs):
        self._dispatch("after_extra_networks_activate", p, **kwargs)

    def process_batch(self, p, **kwargs):
        self._dispatch("process_batch", p, **kwargs)

    def postprocess(self, p, processed):
        self._dispatch("postprocess", p, processed)

    def postprocess_batch(self, p, images, **kwargs):
        self._dispatch("postprocess_batch", p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, **kwargs):
        self._dispatch("postprocess_batch_list", p, pp, **kwargs)

    def post_sample(self, p, ps: PostSampleArgs):
        self._dispatch("post_sample", p, ps)

    def on_mask_blend(self, p, mba: MaskBlendArgs):
        self._dispatch("on_mask_blend", p, mba)

    def postprocess_image(self, p, pp: PostprocessImageArgs):
        self._dispatch("postprocess_image", p, pp)

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs):
        self._dispatch("postprocess_maskoverlay", p, ppmo)

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs):
        self._dispatch("postprocess_image_after_composite", p, pp)

    def before_hr(self, p):
        self._dispatch("before_hr", p)

    def before_component(self, component, **kwargs):
        for script in self.scripts:
            try:
                script.before_component(component, **kwargs)
            except Exception:
                errors.report(f"Error running before_component: {script.filename}", exc_info=True)

    def after_component(self, component, **kwargs):
        for script in self.scripts:
            try:
                script.after_component(component, **kwargs)
            except Exception:
                errors.report(f"Error running after_component: {script.filename}", exc_info=True)

    def script(self, title):
        return self.title_map.get(title.lower())


def reset():
    """Stub-only: forget loaded script classes and runners."""
    global scripts_txt2img, scripts_img2img, scripts_postproc, scripts_current, current_basedir
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()
    scripts_postproc = None
    scripts_current = None
    current_basedir = shared.script_path


scripts_txt2img = ScriptRunner()
scripts_img2img = ScriptRunner()
