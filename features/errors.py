"""Errors a user can fix: bad or insufficient input. The CLI turns them into exit code 2 and one line."""


class InputError(ValueError):
    """The input cannot be used as given; the message names the file, column or machine and the fix."""
