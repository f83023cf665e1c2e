"""uvicorn's HTTP protocol with a deadline for request headers (slow-header protection).

uvicorn times out idle keep-alive connections, but not a connection that never completes
its request headers: a client that opens connections and trickles a few header bytes holds
each one open for good (a "slowloris").  :class:`HeaderDeadlineProtocol` closes a connection
whose next request's headers are not complete ``settings.header_timeout_seconds`` after the
connection opened or the request began.  ``yidai serve`` runs uvicorn with it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from yidai.core.settings import get_settings

log = logging.getLogger("scoring_service")

PROTOCOL = "scoring_service.protocol:HeaderDeadlineProtocol"  # uvicorn's ``http=`` option


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose headers come too slowly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = get_settings().header_timeout_seconds
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            log.warning(
                "closed a connection that sent no complete request headers within %.0f s",
                self.header_timeout,
            )
            self.transport.close()
