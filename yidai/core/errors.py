"""Errors that users can act on: the CLI prints them on one line, without a traceback."""


class YidaiError(Exception):
    """A user-facing error: bad input, missing artefact, misconfiguration."""
