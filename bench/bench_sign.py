"""Benchmark: signing and verification time per document at each PAdES level.

Signs one rendered calibration certificate repeatedly with certissuer's `Sealer` (RSA-2048)
at B-B (invisible and visible), B-T, B-LT and B-LTA, the timestamps and revocation data coming
from the certomancer test PKI that tests/_pki.py serves in-process (so the figures hold the
TSA's and OCSP responder's own work, without a network), then verifies each signed file with
`Verifier` (pyHanko validation, the attack defences; no ledger). Prints milliseconds per
document (median and mean).

    python bench/bench_sign.py [--n 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from certissuer.config import Settings  # noqa: E402
from certissuer.keys import make_keys  # noqa: E402
from certissuer.model import parse_certificate  # noqa: E402
from certissuer.render import Renderer  # noqa: E402
from certissuer.sign import (  # noqa: E402
    Level,
    Sealer,
    SigningPolicy,
    policy_from_settings,
    signature_slots,
)
from certissuer.verify import Verifier, load_trust_roots  # noqa: E402
from tests._pki import PASSPHRASE, make_lab_pki  # noqa: E402


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.1f} {statistics.mean(samples) * 1000:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20, help="documents per level")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        pki = make_lab_pki(home / "pki")
        demo = make_keys(home / "demo", passphrase=PASSPHRASE)
        data = json.loads((ROOT / "samples" / "calibration.json").read_text(), parse_float=Decimal)
        cert = parse_certificate(data)
        settings = Settings(
            lab_code="BENCH",
            signing_pkcs12=pki.p12("alice"),
            signing_trust_roots=(pki.pem("root"),),
            signing_tsa_url=pki.tsa_url,
        )
        pdf = Renderer().render_pdf(
            cert,
            number="HC-2026-000001",
            issued=date.today(),
            qr_url="https://verify.example.invalid/v/x",
            settings=settings,
        )
        slot, _ = signature_slots(cert, approval=False)
        verifier = Verifier(
            trust_roots=load_trust_roots([pki.pem("root"), demo.ca_cert]),
            token_keys=[],
            ledger=None,
        )
        visible = policy_from_settings(settings)
        cases = [
            ("B-B  demo CA, invisible", demo.signer_p12, SigningPolicy(), Level.B_B),
            ("B-B  invisible", pki.p12("alice"), SigningPolicy(), Level.B_B),
            ("B-B  visible", pki.p12("alice"), visible, Level.B_B),
            ("B-T  visible", pki.p12("alice"), visible, Level.B_T),
            ("B-LT visible", pki.p12("alice"), visible, Level.B_LT),
            ("B-LTA visible", pki.p12("alice"), visible, Level.B_LTA),
        ]
        print(f"{args.n} documents per level, RSA-2048, ms per document (median, mean)")
        print(f"{'level':24} {'sign':>15} {'verify':>15}  size")
        with pki.services():
            for name, p12, policy, level in cases:
                from dataclasses import replace

                sealer = Sealer.from_pkcs12(
                    p12,
                    PASSPHRASE,
                    policy=replace(
                        policy, level=level, tsa_url=pki.tsa_url, trust_roots=visible.trust_roots
                    ),
                )
                sealer.sign(pdf, slot=slot)  # warm up: fonts, TSA and OCSP connections
                signing, verifying, sizes = [], [], []
                for _ in range(args.n):
                    start = time.perf_counter()
                    signed = sealer.sign(pdf, slot=slot)
                    signing.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    report = verifier.verify_pdf(signed)
                    verifying.append(time.perf_counter() - start)
                    assert report.signatures and report.signatures[0].level == level.value, (
                        report.reasons
                    )
                    sizes.append(len(signed) - len(pdf))
                print(f"{name:24} {_ms(signing)} {_ms(verifying)}  +{max(sizes) // 1024} KiB")


if __name__ == "__main__":
    main()
