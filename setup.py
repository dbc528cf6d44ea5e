"""The optional compiled part of flowpipe (everything else is in pyproject.toml).

``flowpipe/render/_jsonflows.c`` renders payload JSON straight from aggregated flows. It is optional:
where no C compiler is at hand the build goes on without it and flowpipe renders in Python, the
same bytes, more slowly (``flowpipe.render.COMPILED`` tells which one runs).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("flowpipe.render._jsonflows", ["flowpipe/render/_jsonflows.c"], optional=True,
                             extra_compile_args=["-O2"])])
