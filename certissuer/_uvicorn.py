"""Former home of uvicorn's settings, now `certissuer.web.server`: kept until the CLI imports
`server_config` from `certissuer.web`."""

from certissuer.web.server import server_config

__all__ = ["server_config"]
