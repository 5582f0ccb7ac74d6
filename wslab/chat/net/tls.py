"""TLS for a node that serves ``https://`` and ``wss://`` itself (``serve --certfile
--keyfile``): the server context, with one pt-BR sentence for each way the files can
be wrong, so the CLI exits 1 without a traceback.
"""

from __future__ import annotations

import errno
import os
import ssl

__all__ = ["HSTS", "server_context"]

# Sent with every page a node serves over TLS: browsers keep to https for a year.
HSTS = ("Strict-Transport-Security", "max-age=31536000")
_WHY = {
    errno.ENOENT: "o arquivo não existe",
    errno.EACCES: "sem permissão de leitura",
    errno.EISDIR: "é uma pasta, não um arquivo",
}


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context with ``certfile`` (PEM, the chain after the
    certificate) and ``keyfile`` (PEM; None: the key is in ``certfile``), offering
    HTTP/1.1 only (WebSocket over HTTP/2 is not served).

    Raises:
        ValueError: (a pt-BR sentence) a file is missing or unreadable, is not PEM,
            or the key does not match the certificate.
    """
    for path, what in ((certfile, "o certificado"), (keyfile, "a chave")):
        if path is None:
            continue
        try:
            with open(path, "rb") as file:
                head = file.read(1 << 16)
        except OSError as error:
            why = _WHY.get(error.errno, error.strerror or str(error))
            raise ValueError(f"Não consegui ler {what} {path!r}: {why}.") from None
        if b"-----BEGIN" not in head:
            raise ValueError(f"{what.capitalize()} {path!r} não está no formato PEM.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(os.fspath(certfile), keyfile and os.fspath(keyfile))
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error) or "key values mismatch" in str(error):
            raise ValueError(
                f"A chave {keyfile!r} não corresponde ao certificado {certfile!r}."
            ) from None
        raise ValueError(
            f"Não consegui usar o certificado {certfile!r} com a chave {keyfile!r}: um dos "
            f"dois não é um PEM válido ({error.reason or error})."
        ) from None
    return context
