"""Benchmark: issuing and verifying one certificate at each PAdES level, against the trial PKI.

Makes a trial PKI (`make_keys` with a person, RSA-2048) whose certificates name the CRL and
OCSP responder of `certissuer.trial`'s services, started in this process on a free port
(NOT FOR PRODUCTION; the TSA, OCSP and CRL work is in the figures, on the loopback, and shares
the process's GIL). For B-B, B-T, B-LT and B-LTA it issues the sample calibration certificate
`--n` times through the whole pipeline (`Issuer.issue`: number, render, sign, ledger) and
verifies each file with `Verifier` against the ledger; then the two-signer flow at B-LTA
(the verifier issues, the head approves with `approve_pdf`). Prints seconds per certificate
(median) and the process's peak resident memory after each row.

    python bench/bench_levels.py [--n 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import sys
import tempfile
import time
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from certissuer.approve import approve_pdf  # noqa: E402
from certissuer.config import Settings  # noqa: E402
from certissuer.issue import Issuer, load_token_key  # noqa: E402
from certissuer.keys import Person, Role, make_keys  # noqa: E402
from certissuer.ledger import Ledger  # noqa: E402
from certissuer.model import parse_certificate  # noqa: E402
from certissuer.render import Renderer  # noqa: E402
from certissuer.sign import Level, Sealer  # noqa: E402
from certissuer.trial import TrialAuthority, TrialServer  # noqa: E402
from certissuer.verify import Verdict, Verifier  # noqa: E402

PASSPHRASE = b"bench"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _record(name: str, ref: str) -> Any:
    data = json.loads((ROOT / "samples" / name).read_text(encoding="utf-8"), parse_float=Decimal)
    data["ref"] = ref
    if data.get("stamp_number"):  # a stamp is used once per lab
        data["stamp_number"] = f"ĐT-26 {zlib.crc32(ref.encode()) % 10**7:07d}"
    return parse_certificate(data)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10, help="certificates per level")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url = f"http://127.0.0.1:{_free_port()}"
        keys = make_keys(
            home / "keys",
            passphrase=PASSPHRASE,
            organisation="Bench lab",
            people=[
                Person("Phạm Minh Tuấn", (Role.VERIFIER,)),
                Person("Lê Hoàng Phúc", (Role.HEAD, Role.SIGNATORY)),
            ],
            services_url=url,
        )
        verifier_p12, head_p12 = (p.pkcs12 for p in keys.people)
        settings = Settings(
            lab_code="BENCH",
            lab_name_vi="Phòng thí nghiệm đo hiệu năng",
            lab_name_en="Benchmark laboratory",
            signing_pkcs12=verifier_p12,
            signing_trust_roots=(keys.ca_cert,),
            signing_tsa_url=f"{url}/tsa",
            token_key=keys.token_key,
            ledger_url=f"sqlite:///{home / 'ledger.db'}",
        )
        renderer = Renderer()
        ledger = Ledger.open(settings.ledger_url, create=True)
        token_key = load_token_key(settings)
        port = int(url.rsplit(":", 1)[1])
        authority = TrialAuthority.load(home / "keys", PASSPHRASE)
        print(f"{args.n} certificates per level, RSA-2048, trial services in-process at {url}")
        print(f"{'level':22} {'issue s/cert':>13} {'verify s/cert':>14}  {'size':>8}  peak RSS")
        with TrialServer.start(authority, port=port):
            for level in Level:
                sealer = Sealer.from_settings(settings, PASSPHRASE, level=level)
                issuer = Issuer(
                    settings,
                    ledger=ledger,
                    sealer=sealer,
                    token_key=token_key,
                    out_dir=home / "out" / level.value,
                    renderer=renderer,
                )
                verifier = Verifier.from_settings(settings, ledger=ledger)
                issuer.issue(_record("calibration.json", f"warm-{level.value}"))  # warm up
                issuing, verifying, size = [], [], 0
                for i in range(args.n):
                    cert = _record("calibration.json", f"{level.value}-{i}")
                    start = time.perf_counter()
                    path = issuer.issue(cert).path
                    issuing.append(time.perf_counter() - start)
                    data = path.read_bytes()
                    start = time.perf_counter()
                    report = verifier.verify_pdf(data)
                    verifying.append(time.perf_counter() - start)
                    assert report.verdict is Verdict.VALID, report.reasons
                    assert report.signatures[0].level == level.value, report.signatures
                    size = max(size, len(data))
                print(
                    f"{level.value:22} {statistics.median(issuing):13.3f} "
                    f"{statistics.median(verifying):14.3f}  {size // 1024:>5} KiB  "
                    f"{_peak_mib():.0f} MiB"
                )

            # Two signers at B-LTA: the verifier issues, the head approves (both timestamped,
            # with revocation data and a document timestamp each).
            two = settings.replace(signing_level=Level.B_LTA, signing_approval=True)
            sealer = Sealer.from_settings(two, PASSPHRASE)
            head = Sealer.from_pkcs12(head_p12, PASSPHRASE, policy=sealer.policy)
            issuer = Issuer(
                two,
                ledger=ledger,
                sealer=sealer,
                token_key=token_key,
                out_dir=home / "out" / "two",
                renderer=renderer,
            )
            verifier = Verifier.from_settings(two, ledger=ledger)
            issuing, verifying, size = [], [], 0
            for i in range(args.n + 1):
                cert = _record("verification.json", f"two-{i}")
                start = time.perf_counter()
                path = issuer.issue(cert).path
                approve_pdf(path, sealer=head, verifier=verifier, ledger_key=token_key)
                took = time.perf_counter() - start
                data = path.read_bytes()
                start = time.perf_counter()
                report = verifier.verify_pdf(data)
                if i:  # the first one warms up
                    verifying.append(time.perf_counter() - start)
                    issuing.append(took)
                assert report.verdict is Verdict.VALID, report.reasons
                size = max(size, len(data))
            print(
                f"{'B-LTA, two signers':22} {statistics.median(issuing):13.3f} "
                f"{statistics.median(verifying):14.3f}  {size // 1024:>5} KiB  "
                f"{_peak_mib():.0f} MiB"
            )
            print("(two signers: issue = the verifier's issue + the head's approval)")


if __name__ == "__main__":
    main()
