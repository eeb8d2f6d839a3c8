"""The one exception type library code raises; only the CLI and the API render it.

Messages follow crun's shape: lowercase, ``verb `object`: reason``. A hint says what to do.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

# Exit statuses as docker uses them.
EXIT_ENGINE = 125  # the engine itself failed (bad flag, pull error, setup error)
EXIT_CANNOT_EXEC = 126  # the command was found but could not be run
EXIT_NOT_FOUND = 127  # the command was not found


class RootlessError(Exception):
    """An error the user can act on: ``message`` says what happened, ``hint`` what to do."""

    exit_code = EXIT_ENGINE

    def __init__(self, message: str, hint: Optional[str] = None, exit_code: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(RootlessError):
    """Bad command-line usage (docker exits 125 for these too)."""


class ConfigError(RootlessError):
    """The configuration file is unreadable or invalid."""


class NotFound(RootlessError):
    """An image, container, volume or network that does not exist."""

    # docker prints "Error: No such container: x" and exits 1 for inspect/rm of unknown objects
    exit_code = 1


class ToolError(RootlessError):
    """A host tool (newuidmap, slirp4netns, ...) failed or is missing."""


class RegistryError(RootlessError):
    """A registry answered with an error, or could not be reached."""


class ImageError(RootlessError):
    """A malformed, tampered or unsafe image."""


class RuntimeSetupError(RootlessError):
    """A container could not be set up (a namespace, mount or exec step failed)."""
