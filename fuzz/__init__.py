"""Fuzzing of flowpipe's decoders: atheris harnesses (``fuzz_*.py``, run by ``run.sh``) and the
pieces the hypothesis tests share with them (``seeds``, ``structure``, ``checks``). See README.md."""
