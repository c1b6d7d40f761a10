"""Just enough of Gradio's component API for a script's `ui()` to run in tests without Gradio:
components keep their constructor arguments (`value`, `label`, `elem_id`) and layout blocks are
context managers. Real Gradio is exercised in the browser tests of the tab."""
from __future__ import annotations

from typing import Any, List


class Component:
    created: List["Component"] = []

    def __init__(self, value: Any = None, *args: Any, label: Any = None, elem_id: Any = None, **kwargs: Any) -> None:
        if args and type(self) is Slider:  # gr.Slider(minimum, maximum, value=…)
            value = kwargs.pop("value", value)
        self.value = kwargs.pop("value", value)
        self.label = label
        self.elem_id = elem_id
        self.kwargs = kwargs
        Component.created.append(self)

    def __enter__(self) -> "Component":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class Checkbox(Component):
    pass


class Textbox(Component):
    pass


class Dropdown(Component):
    pass


class Markdown(Component):
    pass


class Slider(Component):
    def __init__(self, minimum: float = 0, maximum: float = 100, *args: Any, **kwargs: Any) -> None:
        super().__init__(kwargs.pop("value", minimum), minimum, maximum, **kwargs)
        self.minimum, self.maximum = minimum, maximum


class Row(Component):
    pass


class Column(Component):
    pass


class Accordion(Component):
    pass


class Blocks(Component):
    pass
