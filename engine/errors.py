"""The one exception family for expected failures: the CLI prints its message as one line."""


class SegmintError(Exception):
    """Bad input or an unusable environment; str(error) is a complete one-line explanation."""
