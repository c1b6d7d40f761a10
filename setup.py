"""What goes into the wheel (the rest of the package's metadata is in pyproject.toml).

Forge needs wildcards/ and samples/ at the extension's root, where they stay; the wheel carries them inside the
package, as lib_orchestrator/_bundled/, where lib_orchestrator.bundled_path finds them once installed. Every
subpackage of lib_orchestrator is found here, so a new one needs no entry; scripts/, tests/ and benchmarks/ stay
out (they are Forge's and the checkout's).
"""
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

BUNDLED = {  # package inside the wheel -> folder of the checkout
    "lib_orchestrator._bundled.wildcards": "wildcards",
    "lib_orchestrator._bundled.samples.loras": "samples/loras",
    "lib_orchestrator._bundled.samples.stories": "samples/stories",
}


class FreshBuildPy(build_py):
    """`pip install .` builds in the checkout's build/ folder and packs all it finds there: without this, a module
    an update removed (or renamed) would still be installed from the previous build."""

    def run(self) -> None:
        shutil.rmtree(os.path.join(self.build_lib, "lib_orchestrator"), ignore_errors=True)
        super().run()


setup(
    packages=find_packages(include=["lib_orchestrator", "lib_orchestrator.*"]) + list(BUNDLED),
    package_dir=BUNDLED,
    package_data={
        "lib_orchestrator.enhance": ["templates/*.yaml"],
        **{name: ["**/*"] for name in BUNDLED},
    },
    include_package_data=False,
    cmdclass={"build_py": FreshBuildPy},
)
