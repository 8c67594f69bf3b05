"""Exceptions that carry a message meant for the user (the CLI prints it and exits 2)."""


class InputError(Exception):
    """Bad input: a file, folder, parameter or value a user can fix. The message names it."""
