"""Errors an operator can act on. The CLI prints their message as one line, no traceback, and
exits with the error's code (README, "Exit codes")."""


class VtapError(Exception):
    """Base for every error whose message is meant for the operator."""

    exit_code = 1


class NotRootError(VtapError):
    pass


class MissingToolError(VtapError):
    pass


class LabError(VtapError):
    pass


class NotActiveError(VtapError):
    """`--wait` ran out with the policy still pending or in error (exit code 3)."""

    exit_code = 3
