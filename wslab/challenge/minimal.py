"""Parte 2 in its smallest form: connect, read the first message, close.

The README shows this file as the answer's program; wslab.challenge is the same
idea with every phase timed and every failure named.
"""

import sys

import websocket  # websocket-client

URL = "wss://websocket-fh6l.onrender.com"


def read_first_message(url: str = URL, timeout: float = 75.0) -> str:
    """Open the WebSocket, return the first message the server sends, close (1000)."""
    ws = websocket.create_connection(url, timeout=timeout)  # handshake: HTTP 101
    try:
        return ws.recv()
    finally:
        ws.close()


if __name__ == "__main__":
    print(read_first_message(*sys.argv[1:2]))
