"""HTTPS from `server.tls_certfile`/`tls_keyfile`; with `tls_cafile`, clients must present a certificate
that CA signed (mutual TLS)."""

from __future__ import annotations

import ssl

from pocketstack.errors import StartupError


def server_ssl_context(certfile: str | None, keyfile: str | None, cafile: str | None) -> ssl.SSLContext | None:
    """None without a certificate (plain HTTP); StartupError when the files cannot be used."""
    if certfile is None and keyfile is None:
        if cafile is not None:
            raise StartupError("server.tls_cafile (mutual TLS) needs server.tls_certfile and server.tls_keyfile")
        return None
    if certfile is None or keyfile is None:
        raise StartupError("server.tls_certfile and server.tls_keyfile go together: set both to serve HTTPS")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load the TLS certificate {certfile} with key {keyfile}: {exc}") from exc
    if cafile is not None:
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(f"cannot load the client CA file {cafile}: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context
