"""``python -m yidai.cli``: the ``yidai`` command (the tests and benchmarks start it so)."""

from yidai.cli import main

main()
