"""The package's exceptions, under one root so callers can catch `PromoError`."""

from __future__ import annotations


class PromoError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(PromoError):
    """A setting or CLI argument is not usable; the message is shown to the user as one line."""


class BrokerError(PromoError):
    """The Kafka broker could not be started or reached."""


class SinkError(PromoError):
    """A ClickHouse write or read failed; carries the context of what was being written."""

    def __init__(
        self, message: str, *, partition: int | None = None, code: int | None = None, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.partition = partition
        self.code = code  # the ClickHouse error code, when the server gave one
        self.transient = transient  # worth retrying: the network, a timeout, a busy or read-only server


class StoreBusyError(PromoError):
    """The embedded store is owned by another process and that process did not answer."""


class MacroError(PromoError):
    """A dashboard query cannot be expanded: an unknown macro, a missing or unbindable variable."""


class ViewRequestError(PromoError):
    """A request to the local view has parameters it does not accept; the message is the answer (HTTP 400)."""
