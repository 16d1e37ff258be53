"""User-facing errors: one line that names the problem and the fix. The CLI prints them without a traceback."""


class PrunebenchError(Exception):
    """A problem with the user's input or environment (not a bug): printed as ``error: <message>``."""


class DivergedError(PrunebenchError):
    """Training produced a non-finite loss."""
