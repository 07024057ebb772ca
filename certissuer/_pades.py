"""Former home of the signature checks, now `certissuer.verify`: kept until the CLI imports
`describe` from there."""

from certissuer.verify import SignatureInfo, describe

__all__ = ["SignatureInfo", "describe"]
