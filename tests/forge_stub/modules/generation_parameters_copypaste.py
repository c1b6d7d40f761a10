"""Old alias of modules.infotext_utils: present in Forge and A1111, absent in Forge Classic and Neo."""
import stub_control

if stub_control.current_variant() != "forge":
    raise ModuleNotFoundError("No module named 'modules.generation_parameters_copypaste'",
                              name="modules.generation_parameters_copypaste")

from modules.infotext_utils import *  # noqa: E402, F403
from modules.infotext_utils import parse_generation_parameters, quote, unquote  # noqa: E402, F401
