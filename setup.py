"""The optional compiled parts of flowpipe (everything else is in pyproject.toml).

- ``flowpipe/render/_jsonflows.c`` renders payload JSON straight from aggregated flows;
- ``flowpipe/aggregate/_tables.c`` holds the port rollup's trackers (observing a batch's flows in one C
  loop) and the flow context table;
- ``flowpipe/decode/_walk.c`` walks a datagram's parts for the columnar path (v9/IPFIX data sets, sFlow
  samples).

All are optional: where no C compiler is at hand the build goes on without them and flowpipe runs
the pure-Python code instead, with the same results, more slowly (``flowpipe.render.COMPILED``,
``flowpipe.aggregate.rollup.COMPILED`` and ``flowpipe.decode.walk.COMPILED`` tell which one runs).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(name, [path], optional=True, extra_compile_args=["-O2"])
                   for name, path in (("flowpipe.render._jsonflows", "flowpipe/render/_jsonflows.c"),
                                      ("flowpipe.aggregate._tables", "flowpipe/aggregate/_tables.c"),
                                      ("flowpipe.decode._walk", "flowpipe/decode/_walk.c"))])
