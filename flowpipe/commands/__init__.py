"""Sub-commands of the ``flowpipe`` CLI: each module has ``register(subparsers)`` that adds its
parser and sets ``func`` (args -> exit code). :mod:`flowpipe.cli` lists the modules."""
