"""What the test's server sends, kept as a recorded fact with its provenance.

Nothing here touches the network or imports anything: the answer, the replica and
the client read these strings without loading a WebSocket or TLS library.
"""

#: The test's WebSocket server.
DEFAULT_URL = "wss://websocket-fh6l.onrender.com"

#: The text message that server sends right after the opening handshake.
RECORDED_MESSAGE = "Olá mundo! LTIS 2025"

#: Where ``RECORDED_MESSAGE`` comes from (pt-BR, quoted by the report and the CLI).
PROVENANCE = (
    "mensagem relatada de forma consistente por várias soluções públicas e "
    "independentes deste mesmo teste; não observada por este projeto, cujas "
    "máquinas não alcançam o servidor"
)
