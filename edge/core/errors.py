"""User-facing errors: one clear line naming the file and what to do."""

from __future__ import annotations

from pathlib import Path


class EdgeError(Exception):
    """An error caused by the user's input. The CLI prints it as one line and exits non-zero."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.hint = hint
        self.message = message
        super().__init__(self.line())

    def line(self) -> str:
        parts = [f"{self.path}: {self.message}" if self.path else self.message]
        if self.hint:
            parts.append(self.hint)
        return " — ".join(parts)


class ImageReadError(EdgeError):
    """An image or DICOM file that cannot be decoded (corrupt, truncated, no pixels, unknown format)."""


class DataError(EdgeError):
    """A data folder or manifest that cannot be used (missing, empty, class without images)."""


class BundleError(EdgeError):
    """A model bundle that is missing, malformed, or whose files do not match their hashes."""


class OutputError(EdgeError):
    """An output that cannot be written (directory not writable, a directory where a file goes...)."""
