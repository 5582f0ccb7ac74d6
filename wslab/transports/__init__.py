"""Four ways to push one event stream to a client, measured at the socket.

Short polling, long polling, Server-Sent Events and WebSocket servers deliver the
same timestamped events (:mod:`.events`) to a client whose socket counts every byte
(:mod:`.accounting`); :mod:`.experiment` runs them and summarizes latency, bytes,
requests and connections. Notebook 01 narrates the result.
"""

from .accounting import ByteCounter, CountingHTTPConnection, CountingSocket, open_counting_socket
from .events import Event, TickSchedule
from .experiment import (
    Measurement,
    Transport,
    default_transports,
    format_table,
    run_experiment,
    run_transport,
)

__all__ = [
    "ByteCounter",
    "CountingHTTPConnection",
    "CountingSocket",
    "Event",
    "TickSchedule",
    "Measurement",
    "Transport",
    "default_transports",
    "format_table",
    "open_counting_socket",
    "run_experiment",
    "run_transport",
]
