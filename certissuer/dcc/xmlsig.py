"""The XML signatures (XMLDSig, enveloped; XAdES is XMLDSig underneath) of a DCC document.

A DCC may be signed inside the XML by whoever wrote it: PTB's Good Practice temperature example
in schema 3.2.0 carries a XAdES signature. `check_signatures` says for each ``ds:Signature``
what was checked, and only that:

* **intact**: every reference's digest and the signature value over ``SignedInfo`` match, one
  reference covers the whole document, and the signer is named from the certificate in
  ``KeyInfo``. The certificate itself is *not* checked against a trust list (no chain, no
  revocation): the line says so, so that no trust is claimed that was not checked;
* **broken**: a digest or the signature value does not match: the document (or the signature)
  was changed after signing;
* **unchecked**: an algorithm, transform or reference this module does not check; the line
  names it. Checked are RSA PKCS#1 v1.5 and ECDSA with SHA-256/384/512, SHA-256/384/512
  digests, C14N 1.0 and 1.1 (inclusive, with or without comments), exclusive C14N and the
  enveloped-signature transform, with references to the whole document (``URI=""``) or to an
  element by ``Id`` in it.

The document is parsed as `read.parse_root` parses it (no DTD, no entities, no network), but
keeping processing instructions, which canonical XML includes.

>>> checks = check_signatures(raw, where="dcc.xml")  # doctest: +SKIP
>>> [c.line for c in checks]  # doctest: +SKIP
['XML signature: intact, signed by CN=Calibration Lab A1,O=Calibration A GmbH,C=DE
  (certificate not checked against a trust list)']
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from lxml import etree

__all__ = ["DS_NAMESPACE", "NO_SIGNATURE", "SignatureCheck", "check_signatures", "strip"]

DS_NAMESPACE: Final = "http://www.w3.org/2000/09/xmldsig#"
_DS: Final = "{" + DS_NAMESPACE + "}"

NO_SIGNATURE: Final = "no XML signature"
"""The line said of a DCC that carries no ``ds:Signature``."""

_C14N: Final[dict[str, tuple[bool, bool]]] = {
    # algorithm → (exclusive, with comments); C14N 1.1 differs from 1.0 only in how xml:id,
    # xml:base and the other xml: attributes of a subset's ancestors are inherited: a subset
    # whose ancestors carry any is not checked (see _element).
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": (False, False),
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments": (False, True),
    "http://www.w3.org/2006/12/xml-c14n11": (False, False),
    "http://www.w3.org/2006/12/xml-c14n11#WithComments": (False, True),
    "http://www.w3.org/2001/10/xml-exc-c14n#": (True, False),
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments": (True, True),
}
_ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_DIGESTS: Final[dict[str, str]] = {
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}
_SIGNATURES: Final[dict[str, tuple[str, hashes.HashAlgorithm]]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512()),
}
_ID_ATTRIBUTES: Final = ("Id", "ID", "id")
_XML_ATTR: Final = "{http://www.w3.org/XML/1998/namespace}"

State = Literal["intact", "broken", "unchecked"]


@dataclass(frozen=True)
class SignatureCheck:
    """What was found for one ``ds:Signature`` of a DCC document."""

    state: State
    line: str
    """One line for the person at intake, starting "XML signature: "."""
    signer: str | None = None
    """The subject of the certificate that verified the signature (RFC 4514), when intact."""
    sourceline: int | None = None
    """The line of the ``ds:Signature`` element in the document."""


class _Broken(Exception):
    """A digest or the signature value does not match (the reason)."""


class _Unchecked(Exception):
    """Something this module does not check (the reason)."""


def _parser() -> Any:
    # Hardened as read._parser, but processing instructions and comments kept: canonical XML
    # includes PIs, and the "WithComments" algorithms include comments.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
    )


def _parse(raw: bytes) -> Any:
    tree = etree.parse(BytesIO(raw), _parser())
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise _Unchecked("the document has a DOCTYPE")
    return tree


def check_signatures(raw: bytes, *, where: str) -> list[SignatureCheck]:
    """Check each XML signature of the DCC document `raw` (already accepted by `parse_root`).

    Returns one `SignatureCheck` per ``ds:Signature`` in document order; an empty list when
    the document carries none (say `NO_SIGNATURE`). `where` is not used in the lines (the
    caller names the file) but kept for symmetry with the readers.
    """
    del where
    try:
        tree = _parse(raw)
    except (etree.XMLSyntaxError, _Unchecked):
        return []  # parse_root refuses such a document first
    count = len(list(tree.getroot().iter(_DS + "Signature")))
    return [_check(raw, index) for index in range(count)]


def strip(root: Any) -> int:
    """Remove every ``ds:Signature`` from the tree of `root`, keeping the text around it.

    What an enveloped signature signs is the document without it; reading the DCC from the
    stripped tree reads only that (nothing hidden inside a signature's ``ds:Object``).
    Returns the number removed.
    """
    found = list(root.iter(_DS + "Signature"))
    for sig in found:
        _remove(sig)
    return len(found)


def _remove(el: Any) -> None:
    """Remove `el` from its parent, its tail text joined to what came before it."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        before = el.getprevious()
        if before is not None:
            before.tail = (before.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _check(raw: bytes, index: int) -> SignatureCheck:
    tree = _parse(raw)
    sig = list(tree.getroot().iter(_DS + "Signature"))[index]
    line = sig.sourceline
    try:
        signer = _verify(raw, sig, index)
    except _Broken as exc:
        return SignatureCheck(
            "broken",
            f"XML signature: BROKEN — the document was changed after signing ({exc})",
            sourceline=line,
        )
    except _Unchecked as exc:
        return SignatureCheck("unchecked", f"XML signature: not checked: {exc}", sourceline=line)
    return SignatureCheck(
        "intact",
        f"XML signature: intact, signed by {signer} (certificate not checked against a trust list)",
        signer=signer,
        sourceline=line,
    )


def _one(parent: Any, name: str) -> Any:
    found = parent.findall(_DS + name)
    if len(found) != 1:
        raise _Unchecked(f"expected one ds:{name} in ds:{etree.QName(parent).localname}")
    return found[0]


def _algorithm(el: Any) -> str:
    return str(el.get("Algorithm") or "")


def _b64(el: Any, what: str) -> bytes:
    try:
        return base64.b64decode("".join((el.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise _Broken(f"the {what} is not base64") from None


def _verify(raw: bytes, sig: Any, index: int) -> str:
    signed_info = _one(sig, "SignedInfo")
    c14n = _one(signed_info, "CanonicalizationMethod")
    if _algorithm(c14n) not in _C14N or len(c14n):
        raise _Unchecked(f"algorithm {_algorithm(c14n) or '(none)'} (canonicalization)")
    method = _algorithm(_one(signed_info, "SignatureMethod"))
    if method not in _SIGNATURES:
        raise _Unchecked(f"algorithm {method or '(none)'} (signature)")
    references = signed_info.findall(_DS + "Reference")
    for ref in references:
        _supported(ref)
    certificates = _certificates(sig)
    value = _b64(_one(sig, "SignatureValue"), "signature value")
    exclusive, comments = _C14N[_algorithm(c14n)]
    if not exclusive and _inherits_xml_attributes(signed_info):
        raise _Unchecked("ds:SignedInfo below elements with xml: attributes")
    data = etree.tostring(signed_info, method="c14n", exclusive=exclusive, with_comments=comments)
    kind, hash_ = _SIGNATURES[method]
    # KeyInfo may carry the chain: the signer is the certificate whose key verifies.
    wanted = rsa.RSAPublicKey if kind == "rsa" else ec.EllipticCurvePublicKey
    keyed = [c for c in certificates if isinstance(c.public_key(), wanted)]
    if not keyed:
        raise _Unchecked(f"algorithm {method} with no {kind.upper()} certificate in ds:KeyInfo")
    cert = next((c for c in keyed if _verifies(c.public_key(), kind, hash_, value, data)), None)
    if cert is None:
        raise _Broken("the signature value does not match the signed information")
    # SignedInfo is the signer's: now what its references name must be what they signed.
    whole = False
    for ref in references:
        whole = _check_reference(raw, ref, index) or whole
    if not whole:
        raise _Unchecked("no reference of the signature covers the whole document")
    return str(cert.subject.rfc4514_string())


def _verifies(key: Any, kind: str, hash_: hashes.HashAlgorithm, value: bytes, data: bytes) -> bool:
    try:
        if kind == "rsa":
            key.verify(value, data, padding.PKCS1v15(), hash_)
            return True
        size = (key.curve.key_size + 7) // 8
        if len(value) != 2 * size:  # XMLDSig's ECDSA value is r ‖ s (RFC 4050)
            return False
        r = int.from_bytes(value[:size], "big")
        s = int.from_bytes(value[size:], "big")
        key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(hash_))
        return True
    except InvalidSignature:
        return False


def _certificates(sig: Any) -> list[x509.Certificate]:
    key_info = sig.find(_DS + "KeyInfo")
    found = [] if key_info is None else list(key_info.iter(_DS + "X509Certificate"))
    if not found:
        raise _Unchecked("no certificate (ds:X509Certificate) in ds:KeyInfo names the signer")
    try:
        return [x509.load_der_x509_certificate(_b64(el, "certificate")) for el in found]
    except (ValueError, _Broken):
        raise _Unchecked("a certificate in ds:KeyInfo cannot be read") from None


def _transforms(ref: Any) -> list[Any]:
    transforms_el = ref.find(_DS + "Transforms")
    return [] if transforms_el is None else transforms_el.findall(_DS + "Transform")


def _supported(ref: Any) -> None:
    """Raise `_Unchecked` when `ref` uses what this module does not check."""
    digest_method = _algorithm(_one(ref, "DigestMethod"))
    if digest_method not in _DIGESTS:
        raise _Unchecked(f"algorithm {digest_method or '(none)'} (digest)")
    transforms = _transforms(ref)
    for t in transforms:
        if _algorithm(t) != _ENVELOPED and (_algorithm(t) not in _C14N or len(t)):
            raise _Unchecked(f"algorithm {_algorithm(t) or '(none)'} (transform)")
    if len([t for t in transforms if _algorithm(t) != _ENVELOPED]) > 1:
        raise _Unchecked("more than one canonicalization transform in a reference")
    uri = ref.get("URI")
    if uri != "" and not (uri is not None and uri.startswith("#") and len(uri) > 1):
        raise _Unchecked(f"a reference to {uri!r} (only the document and its parts are checked)")


def _check_reference(raw: bytes, ref: Any, index: int) -> bool:
    """Check one ``ds:Reference`` (`_supported`); True when it covers the whole document."""
    uri = str(ref.get("URI"))
    digest_method = _algorithm(_one(ref, "DigestMethod"))
    transforms = _transforms(ref)
    # A fresh copy of the document for each reference: transforms change it.
    doc = _parse(raw)
    if uri == "":
        target = doc.getroot()
        whole = True
    else:
        target = _element(doc, uri[1:])
        whole = target is doc.getroot()
    for t in transforms:
        if _algorithm(t) == _ENVELOPED:
            own = list(doc.getroot().iter(_DS + "Signature"))[index]
            if target is own or own in list(target.iterancestors()):
                raise _Unchecked("an enveloped-signature transform inside the signature")
            _remove(own)
    c14ns = [t for t in transforms if _algorithm(t) != _ENVELOPED]
    # The default is inclusive C14N 1.0. A same-document reference ("" or "#id") drops
    # comments whatever the canonicalization says (XMLDSig 1.1, 4.4.3.3).
    exclusive = bool(c14ns) and _C14N[_algorithm(c14ns[0])][0]
    if not whole and not exclusive and _inherits_xml_attributes(target):
        raise _Unchecked(f"a reference to {uri!r} below elements with xml: attributes")
    data = etree.tostring(
        doc if whole else target, method="c14n", exclusive=exclusive, with_comments=False
    )
    digest = hashlib.new(_DIGESTS[digest_method], data).digest()
    if digest != _b64(_one(ref, "DigestValue"), "digest value"):
        what = "the signed document" if whole else f"the signed element {uri}"
        raise _Broken(f"the digest of {what} differs")
    return whole


def _element(doc: Any, ident: str) -> Any:
    found = [
        el
        for el in doc.getroot().iter()
        if isinstance(el.tag, str) and any(el.get(a) == ident for a in _ID_ATTRIBUTES)
    ]
    if len(found) != 1:
        # Two elements with one Id are how a signature is wrapped around other content.
        raise _Broken(f"the reference #{ident} names {len(found)} elements, expected one")
    return found[0]


def _inherits_xml_attributes(el: Any) -> bool:
    return any(k.startswith(_XML_ATTR) for anc in el.iterancestors() for k in anc.attrib if k)
