"""The one exception family for expected failures: the CLI prints its message as one line."""


class SegmintError(Exception):
    """Bad input or an unusable environment; str(error) is a complete one-line explanation."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """What to record or print for any error: a SegmintError's own message, else the type and
    the first line of the message (an unexpected error says what kind it was)."""
    if isinstance(exc, SegmintError):
        return first_line(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
