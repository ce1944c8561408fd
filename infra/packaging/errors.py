"""The one error the build raises."""


class BuildError(RuntimeError):
    """The artifacts cannot be built as specified; the message says why."""
