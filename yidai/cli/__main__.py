"""``python -m yidai.cli``: the ``yidai`` command."""

from yidai.cli import main

main()
