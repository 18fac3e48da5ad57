"""The optional C accelerator of the UDP hot loop (everything else is in pyproject.toml).

`optional=True`: a machine without a C compiler and Python's headers (Debian: gcc,
python3-dev) still installs dnsd, with the pure-Python loop (`dnsd.serve.mmsg.ACCELERATED`).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dnsd.serve._fastpath",
            ["dnsd/serve/_fastpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
