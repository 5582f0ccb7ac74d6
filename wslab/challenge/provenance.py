"""What the test's server sends, kept as a recorded fact with its provenance.

Nothing here touches the network or imports anything: the answer, the replica and
the client read these strings without loading a WebSocket or TLS library.
"""

#: The test's WebSocket server.
DEFAULT_URL = "wss://websocket-fh6l.onrender.com"

#: The text message that server sends right after the opening handshake.
RECORDED_MESSAGE = "Olá mundo! LTIS 2025"

#: Public solutions of this same test whose README quotes ``RECORDED_MESSAGE``, as
#: (repository, commit of the README that quotes it, date of that commit).
SOURCES = (
    ("pedro-meca/Teste-estagio", "d27f6f3", "2025-04-29"),
    ("RafaFelisberto/WebSocketTeste", "fa4110a", "2025-04-29"),
)
#: When this project read ``SOURCES`` (UTC date).
SOURCES_READ_ON = "2026-12-06"

#: Where ``RECORDED_MESSAGE`` comes from (pt-BR, quoted by the report and the CLI).
PROVENANCE = (
    "mensagem citada no README de soluções públicas e independentes deste mesmo teste ("
    + " e ".join(f"github.com/{repo}" for repo, _, _ in SOURCES)
    + f", lidas em {SOURCES_READ_ON}); não observada por este projeto, cujas "
    "máquinas não alcançam o servidor"
)
