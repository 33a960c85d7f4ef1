"""The edge runtime's one error type: bad bundle or bad input, with a message naming it."""


class EdgeError(ValueError):
    """A bundle or an input the edge runtime cannot use; the message says which and why."""
