"""Build the server's ``ssl.SSLContext`` from the TLS settings, with one-line errors."""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING

from tricorn.errors import ConfigError

if TYPE_CHECKING:
    from tricorn.config import Config

VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def _readable(key: str, path: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(f"config: {key} = {path!r}: no such file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"config: {key} = {path!r}: file is not readable")


def build_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server TLS context, or None when no ``certfile`` is set.

    TLS 1.2 is the minimum; ALPN offers ``config.alpn_protocols`` in order. Raises
    ``ConfigError`` naming the setting for a missing file, a key that does not match the
    certificate, a wrong key password, bad CA certificates or an invalid cipher string.
    """
    if not config.certfile:
        if config.keyfile:
            raise ConfigError("config: keyfile is set but certfile is not: expected both")
        return None
    _readable("certfile", config.certfile)
    if config.keyfile:
        _readable("keyfile", config.keyfile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_cert_chain(context, config)
    if config.ciphers:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise ConfigError(
                f"config: ciphers = {config.ciphers!r}: expected an OpenSSL cipher list"
            ) from None
    _verify_clients(context, config)
    if config.alpn_protocols:
        context.set_alpn_protocols(config.alpn_protocols)
    return context


def _load_cert_chain(context: ssl.SSLContext, config: Config) -> None:
    try:
        context.load_cert_chain(
            config.certfile,
            config.keyfile or None,
            password=config.keyfile_password or None,
        )
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise ConfigError(
                f"config: keyfile = {config.keyfile!r}: the key does not match certfile "
                f"{config.certfile!r}"
            ) from None
        raise ConfigError(
            f"config: certfile = {config.certfile!r}: cannot load the certificate and key "
            f"({reason})"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"config: certfile = {config.certfile!r}: cannot load ({error.strerror or error})"
        ) from None


def _verify_clients(context: ssl.SSLContext, config: Config) -> None:
    context.verify_mode = VERIFY_MODES[config.verify_mode]
    if config.ca_certs:
        _readable("ca_certs", config.ca_certs)
        try:
            context.load_verify_locations(cafile=config.ca_certs)
        except ssl.SSLError as error:
            raise ConfigError(
                f"config: ca_certs = {config.ca_certs!r}: cannot load ({error.reason or error})"
            ) from None
    elif config.verify_mode != "none":
        raise ConfigError(
            f"config: verify_mode = {config.verify_mode!r}: needs ca_certs to verify clients"
        )
