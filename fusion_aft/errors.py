"""Exception types shared by the whole package.

Every error a user can cause derives from :class:`UserInputError`; the command line prints it as
one line and exits with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FusionAftError(Exception):
    """Base class of all errors raised on purpose by fusion-aft."""


class UserInputError(FusionAftError, ValueError):
    """Bad input from a user: a name, a file, an option. The message says what and how to fix it."""


class UnknownNameError(UserInputError, KeyError):
    """A registry lookup failed; the message lists the close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(UserInputError):
    """A second entry was registered under a name that is already taken."""


class MissingWeightsError(UserInputError):
    """Pretrained weights were asked for but cannot be found; never replaced by random ones."""


class StaleBankError(UserInputError):
    """A cached feature bank does not match the dataset or teacher it is used with."""
