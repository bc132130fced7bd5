"""Exceptions raised by the engine. Each carries a message fit to show a user."""
from __future__ import annotations


class ExplorerError(Exception):
    """Base class: every error the engine raises on bad input or a failed load."""


class CorpusError(ExplorerError):
    """A corpus file could not be read. Names the file and, where it applies, the line."""

    def __init__(self, file: str, reason: str, line: int | None = None):
        self.file, self.reason, self.line = file, reason, line
        where = f"{file}, line {line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


class ModelLoadError(ExplorerError):
    """A model could not be loaded. Names the model and the reason."""

    def __init__(self, model: str, reason: str):
        self.model, self.reason = model, reason
        super().__init__(f"Cannot load model '{model}': {reason}")


class LimitError(ExplorerError):
    """An input is over one of the configured limits. Names the limit and its value."""


class ModelOfflineError(ModelLoadError):
    """A Hub model is not in the local cache and the Hub cannot be reached."""


class SettingsError(ExplorerError):
    """An environment variable of the deployment holds a value that cannot be used. Names the variable."""


class ConfigError(ExplorerError):
    """A retrieval configuration is invalid. Names the field."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


class QrelsError(CorpusError):
    """Queries or judgments could not be read. Names the file and, where it applies, the line."""


class ModelSpecError(ModelLoadError):
    """A model name or path is not one this server accepts (not a catalog name, Hub id or allowed directory)."""


class Cancelled(ExplorerError):
    """Work was stopped: by the user, or because its session ended."""
