"""modules.generation_parameters_copypaste, per variant:
- Forge: the old name of modules.infotext_utils (an alias of the same names);
- Classic: absent (ImportError);
- Neo: a near-empty compatibility module of its own: `create_buttons(buttons, **kwargs)` (one button per name)
  and a `bind_buttons(buttons, tabname, fn)` that does nothing; nothing else of infotext_utils."""
import sys as _sys

import stub_control as _stub_control

_variant = _stub_control.current_variant()

if _variant == "classic":
    raise ModuleNotFoundError("No module named 'modules.generation_parameters_copypaste'",
                              name="modules.generation_parameters_copypaste")

if _variant == "neo":
    gr = _sys.modules.get("gradio")  # Neo imports Gradio here; the stand-in only passes on one already loaded

    def create_buttons(buttons: list, **kwargs) -> list:
        from modules.ui_components import ToolButton

        return [ToolButton(b, elem_id=f"{b}_button") for b in buttons]

    def bind_buttons(buttons, tabname, fn):
        """Does nothing (Neo keeps it so old extensions still import)."""

else:
    from modules.infotext_utils import *  # noqa: F403
    from modules.infotext_utils import (  # noqa: F401
        bind_buttons,
        create_buttons,
        infotext_to_setting_name_mapping,
        parse_generation_parameters,
        quote,
        unquote,
    )

del _variant
