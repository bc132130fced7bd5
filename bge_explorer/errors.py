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


class NamedError(ExplorerError):
    """An error about one named thing, kept as the attribute ``about`` says (``model``, ``field``) with ``reason``."""

    about = "subject"
    template = "{subject}: {reason}"

    def __init__(self, subject: str, reason: str):
        setattr(self, self.about, subject)
        self.reason = reason
        super().__init__(self.template.format(subject=subject, reason=reason))


class ModelLoadError(NamedError):
    """A model could not be loaded. Names the model and the reason."""

    about, template = "model", "Cannot load model '{subject}': {reason}"


class LimitError(ExplorerError):
    """An input is over one of the configured limits. Names the limit and its value."""


class ModelOfflineError(ModelLoadError):
    """A Hub model is not in the local cache and the Hub cannot be reached."""


class SettingsError(ExplorerError):
    """An environment variable of the deployment holds a value that cannot be used. Names the variable."""


class ConfigError(NamedError):
    """A retrieval configuration is invalid. Names the field."""

    about = "field"


class QrelsError(CorpusError):
    """Queries or judgments could not be read. Names the file and, where it applies, the line."""


class ModelSpecError(ModelLoadError):
    """A model name or path is not one this server accepts (not a catalog name, Hub id or allowed directory)."""


class Cancelled(ExplorerError):
    """Work was stopped: by the user, or because its session ended."""
