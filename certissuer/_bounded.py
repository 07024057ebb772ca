"""Former home of the bounded check, now `certissuer.verify`: kept until the CLI imports
`verify_pdf_bounded` from there."""

from certissuer.verify import verify_pdf_bounded

__all__ = ["verify_pdf_bounded"]
