"""modules.ui_common stand-in: create_refresh_button returns a fake ToolButton wired to the refresh function."""
from modules.ui_components import ToolButton

refresh_symbol = "\U0001f504"


def create_refresh_button(refresh_component, refresh_method, refreshed_args, elem_id):
    def refresh():
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        for comp in refresh_component if isinstance(refresh_component, list) else [refresh_component]:
            for k, v in args.items():
                setattr(comp, k, v)
        return args

    button = ToolButton(value=refresh_symbol, elem_id=elem_id)
    button.click(fn=refresh, inputs=[], outputs=refresh_component)
    button.refresh = refresh
    return button
