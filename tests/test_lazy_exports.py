"""The packages' top-level names: each resolves to its defining module's object, importing
that module only on first use (so `import diffprior` and plugin discovery stay torch-free)."""

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["diffprior", "diffprior_unet", "diffprior_diffusers"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves_to_the_object_its_module_defines(package):
    module = importlib.import_module(package)
    assert "__version__" in module.__all__ and sorted(dir(module)) == sorted(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        if name != "__version__":
            home = importlib.import_module(module._LAZY[name])
            # a name equal to its module's last part exports the module itself
            expected = home if module._LAZY[name].rsplit(".", 1)[-1] == name else getattr(home, name)
            assert value is expected, f"{package}.{name}"
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such_name'"):
        module.no_such_name


def test_a_name_imports_its_module_on_first_access_only():
    code = ("import sys, diffprior, diffprior_unet; "
            "assert 'torch' not in sys.modules and 'diffprior_unet.model' not in sys.modules; "
            "diffprior_unet.UNet; assert 'diffprior_unet.model' in sys.modules; "
            "assert 'UNet' in vars(diffprior_unet)")  # cached: later lookups skip __getattr__
    subprocess.run([sys.executable, "-c", code], check=True)
