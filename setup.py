"""The optional compiled parts of flowpipe (everything else is in pyproject.toml).

- ``flowpipe/render/_jsonflows.c`` renders payload JSON straight from aggregated flows;
- ``flowpipe/aggregate/_tables.c`` holds the port rollup's trackers (observing a batch's flows in one C
  loop) and the flow context table;
- ``flowpipe/decode/_walk.c`` walks a datagram's parts for the columnar path (v9/IPFIX data sets, sFlow
  samples) and reads sFlow samples into columns;
- ``flowpipe/_udp.c`` reads many UDP datagrams per system call (Linux ``recvmmsg``).

All are optional: where no C compiler is at hand the build goes on without them and flowpipe runs
the pure-Python code instead, with the same results, more slowly (``flowpipe.render.COMPILED``,
``flowpipe.aggregate.rollup.COMPILED``, ``flowpipe.decode.walk.COMPILED`` and ``flowpipe.listen.RECV_MANY``
tell which one runs).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(name, [path], optional=True, extra_compile_args=["-O2"])
                   for name, path in (("flowpipe.render._jsonflows", "flowpipe/render/_jsonflows.c"),
                                      ("flowpipe.aggregate._tables", "flowpipe/aggregate/_tables.c"),
                                      ("flowpipe.decode._walk", "flowpipe/decode/_walk.c"),
                                      ("flowpipe._udp", "flowpipe/_udp.c"))])
