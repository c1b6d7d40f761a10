"""modules.ui_components stand-in: Gradio-free fakes with .value, .label, .elem_id (usable as context managers)."""
from __future__ import annotations

from contextlib import contextmanager


class _FakeComponent:
    def __init__(self, value=None, *, label=None, elem_id=None, elem_classes=None, visible=True, interactive=None,
                 **kwargs):
        self.value = value
        self.label = label
        self.elem_id = elem_id
        self.elem_classes = elem_classes
        self.visible = visible
        self.interactive = interactive
        self.kwargs = kwargs
        self.events = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _on(self, event, fn=None, inputs=None, outputs=None, **kwargs):
        self.events.setdefault(event, []).append((fn, inputs, outputs, kwargs))
        return self

    def change(self, fn=None, inputs=None, outputs=None, **kwargs):
        return self._on("change", fn, inputs, outputs, **kwargs)

    def click(self, fn=None, inputs=None, outputs=None, **kwargs):
        return self._on("click", fn, inputs, outputs, **kwargs)

    def get_block_name(self):
        return type(self).__name__.lower()


class FormComponent:
    webui_do_not_create_gradio_pyi_thank_you = True

    def get_expected_parent(self):
        return None


class ToolButton(_FakeComponent):
    def __init__(self, value="", *args, elem_classes=None, **kwargs):
        super().__init__(value, elem_classes=["tool", *(elem_classes or [])], **kwargs)


class ResizeHandleRow(_FakeComponent):
    pass


class FormRow(_FakeComponent):
    pass


class FormColumn(_FakeComponent):
    pass


class FormGroup(_FakeComponent):
    pass


class FormHTML(_FakeComponent):
    pass


class FormColorPicker(_FakeComponent):
    pass


class DropdownMulti(_FakeComponent):
    def __init__(self, value=None, *, choices=None, **kwargs):
        super().__init__(value if value is not None else [], **kwargs)
        self.choices = choices or []
        self.multiselect = True


class DropdownEditable(_FakeComponent):
    def __init__(self, value=None, *, choices=None, **kwargs):
        super().__init__(value, **kwargs)
        self.choices = choices or []
        self.allow_custom_value = True


class InputAccordionImpl(_FakeComponent):
    """Forge: a hidden checkbox mirrored onto an accordion; its value is True when the accordion is open."""

    global_index = 0

    def __init__(self, value=None, setup=False, **kwargs):
        if not setup:
            super().__init__(value, **kwargs)
            return
        self.accordion_id = kwargs.get("elem_id")
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{InputAccordionImpl.global_index}"
            InputAccordionImpl.global_index += 1
        kwargs["elem_id"] = self.accordion_id + "-checkbox"
        label = kwargs.pop("label", None)
        super().__init__(bool(value), label=label, visible=False, **{k: v for k, v in kwargs.items()
                                                                        if k not in ("visible",)})
        self.accordion = _FakeComponent(None, label=label, elem_id=self.accordion_id, elem_classes=["input-accordion"])
        self.accordion.open = bool(value)

    @contextmanager
    def extra(self):
        yield _FakeComponent(None, elem_id=self.accordion_id + "-extra")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def InputAccordion(value=None, **kwargs):
    """Forge makes this a factory function returning InputAccordionImpl."""
    return InputAccordionImpl(value=value, setup=True, **kwargs)
