"""The one error type of the CLI boundary."""


class CommandError(Exception):
    """A user-facing failure: printed as ``paytoken: message`` on stderr, exit 1.

    Never put a secret in the message.
    """
