"""Errors an operator can act on. The CLI prints their message as one line, no traceback."""


class VtapError(Exception):
    """Base for every error whose message is meant for the operator."""


class NotRootError(VtapError):
    pass


class MissingToolError(VtapError):
    pass


class LabError(VtapError):
    pass
