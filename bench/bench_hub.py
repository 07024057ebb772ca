"""Benchmark the province's hub: pushes of a lab's ledger, token verification and the catalogue.

    python bench/bench_hub.py [--n 5000] [--labs 1] [--verify 500] \\
        [--hub-url postgresql+psycopg://postgres@127.0.0.1:5432/benchhub]

Each lab gets a ledger of its own (SQLite, in /dev/shm when there is one) filled with `--n`
issued certificates through `Ledger.reserve_with` + `complete` (real log events, no PDFs) and
is registered at the hub (`--hub-url`, an empty database; default a new SQLite file under
/tmp). Pushes run in process: `push_to_hub` with a transport that hands the JSON envelope to
`Hub.accept`, in parts of `PUSH_LEAVES` log leaves, as over HTTP. Prints the first push
(certificates/s, seconds, envelope MB, parts), an idle re-push, an incremental push of 1 % new
certificates, `verify_token` answers per second for random tokens, ms per catalogue page for a
search by owner (3 pages), and peak memory (max RSS).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from certissuer.hub import Hub, push_to_hub
from certissuer.hub.catalogue import Catalogue, CatalogueQuery
from certissuer.hub.push import PUSH_LEAVES, Transport
from certissuer.hub.verify import HubVerdict, verify_token
from certissuer.ledger import CertificateEntry, Ledger
from certissuer.token import TokenKey, make_token

TODAY = date(2026, 12, 1)
NOW = datetime(2026, 11, 27, 3, tzinfo=UTC)
OWNERS = [f"Công ty TNHH Cân Sa Đéc {k:02d}" for k in range(10)]
PAGE = 50


class Lab:
    """A lab with its own ledger (SQLite) and token key."""

    def __init__(self, code: str, folder: Path) -> None:
        self.code = code
        self.key = TokenKey.generate()
        self.ledger = Ledger.open(f"sqlite:///{folder / f'{code}.db'}", ledger_key=self.key)
        self.state = folder / f"{code}-push.json"
        self.issued = 0

    def issue(self, count: int) -> None:
        """Add `count` issued certificates to the ledger."""
        for _ in range(count):
            i = self.issued = self.issued + 1
            data = json.dumps({"bench": i})

            def build(number: str, seq: int, i: int = i, data: str = data) -> CertificateEntry:
                return CertificateEntry(
                    number=number, lab_code=self.code, series="HC", year=2026, seq=seq,
                    kind="calibration", ref=f"r{i}", instrument_name="Cân bàn / Platform scale",
                    instrument_model="X", instrument_serial=f"S{i}",
                    customer_name=OWNERS[i % len(OWNERS)], work_date=date(2026, 11, 20),
                    issue_date=date(2026, 11, 27), valid_until=date(2027, 11, 26),
                    issued_at=NOW, data_digest=hashlib.sha256(data.encode()).hexdigest(),
                    data_json=data, token="t",
                )  # fmt: skip

            entry = self.ledger.reserve_with(self.code, "HC", 2026, build)
            self.ledger.complete(
                entry.number, pdf_sha256=f"{i:064x}", pdf_path="x.pdf", signer="CN=b", at=NOW
            )

    def tokens(self) -> list[str]:
        """A QR token for each certificate of the ledger."""
        return [
            make_token(self.key, number=e.number, issued=e.issue_date, digest=e.data_digest)
            for e in self.ledger.entries(limit=10**7)
        ]


class InProcess:
    """A transport to `hub` without HTTP: the head as the app answers it, and each envelope
    serialised to JSON (counted) and read back before `Hub.accept`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.parts = 0
        self.bytes = 0

    def __call__(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        if method == "GET":
            head = self.hub.head(url.rstrip("/").split("/")[-2])
            assert head is not None
            return 200, {"tree_size": head.tree_size, "cursor": head.cursor}
        text = json.dumps(body, ensure_ascii=False)
        self.parts += 1
        self.bytes += len(text.encode())
        r = self.hub.accept(json.loads(text))
        return 200, {
            "from_size": r.from_size,
            "tree_size": r.tree_size,
            "cursor": r.cursor,
            "stored": r.stored,
            "unchanged": r.unchanged,
        }


def push_all(hub: Hub, labs: list[Lab]) -> tuple[float, InProcess, int]:
    """Push every lab once; (seconds, transport with its counts, records stored)."""
    transport = InProcess(hub)
    send: Transport = transport
    stored = 0
    start = time.perf_counter()
    for lab in labs:
        out = push_to_hub(
            "https://hub.bench.invalid", lab.ledger, lab.key, lab_code=lab.code,
            state_path=lab.state, transport=send, today=TODAY,
        )  # fmt: skip
        stored += out.stored
    return time.perf_counter() - start, transport, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="certificates per lab")
    parser.add_argument("--labs", type=int, default=1, choices=(1, 2), help="labs pushing")
    parser.add_argument("--verify", type=int, default=500, help="tokens to verify")
    parser.add_argument("--hub-url", help="hub database (default: a new SQLite file)")
    args = parser.parse_args()
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # the labs' ledgers: filled fast
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(dir=shm) as lab_tmp:
        folder = Path(tmp)
        url = args.hub_url or f"sqlite:///{folder / 'hub.db'}"
        backend = url.split(":", 1)[0].split("+")[0]
        print(
            f"benchmark: hub on {backend}, {args.labs} lab(s) of {args.n} certificates, "
            f"PUSH_LEAVES={PUSH_LEAVES}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        hub = Hub.open(url)
        labs = [Lab(f"DT{k + 1:02d}", Path(lab_tmp)) for k in range(args.labs)]
        for lab in labs:
            hub.register_lab(lab.code, f"Phòng thí nghiệm {lab.code}", token_keys=[lab.key.public])
        start = time.perf_counter()
        for lab in labs:
            lab.issue(args.n)
        print(f"lab ledgers filled     : {time.perf_counter() - start:6.1f} s (not measured)")

        total = args.n * len(labs)
        seconds, sent, stored = push_all(hub, labs)
        assert len(hub.certificates()) == total, "the hub does not hold every certificate"
        print(
            f"first push             : {total / seconds:6.0f} certificates/s, {seconds:.1f} s, "
            f"{sent.bytes / 1e6:.1f} MB envelope, {sent.parts} part(s), {stored} stored"
        )
        seconds, sent, stored = push_all(hub, labs)
        assert stored == 0, f"an idle push stored {stored}"
        print(f"idle re-push           : {seconds:6.2f} s, {sent.parts} part(s)")
        extra = max(1, args.n // 100)
        for lab in labs:
            lab.issue(extra)
        seconds, sent, stored = push_all(hub, labs)
        assert len(hub.certificates()) == total + extra * len(labs)
        print(
            f"incremental push (1 %) : {seconds:6.2f} s for {extra * len(labs)} certificates, "
            f"{sent.bytes / 1e6:.2f} MB, {stored} stored"
        )

        rng = random.Random(7)
        tokens = rng.sample([t for lab in labs for t in lab.tokens()], args.verify)
        start = time.perf_counter()
        for token in tokens:
            answer = verify_token(hub, token, today=TODAY)
            assert answer.verdict is HubVerdict.VALID, answer.reasons
        seconds = time.perf_counter() - start
        print(
            f"verify_token           : {len(tokens) / seconds:6.0f} answers/s "
            f"({seconds / len(tokens) * 1000:.1f} ms each, {len(tokens)} random tokens)"
        )

        catalogue = Catalogue(hub)
        query = CatalogueQuery(records=("certificates",), owner="Sa Đéc 07", limit=PAGE)
        times: list[float] = []
        seen: set[tuple[str, str]] = set()
        for _ in range(3):
            start = time.perf_counter()
            page = catalogue.page(query, today=TODAY)
            times.append(time.perf_counter() - start)
            assert page.hits and all((h.lab_code, h.key) not in seen for h in page.hits), (
                "page repeats"
            )
            seen.update((h.lab_code, h.key) for h in page.hits)
            if page.next is None:
                break
            query = CatalogueQuery(records=query.records, owner=query.owner, limit=PAGE,
                                   after=page.next)  # fmt: skip
        print(
            f"catalogue by owner     : {sum(times) / len(times) * 1000:6.1f} ms/page "
            f"({len(times)} pages of {PAGE}, {page.total} matching; "
            f"{', '.join(f'{t * 1000:.1f}' for t in times)} ms)"
        )
        for lab in labs:
            lab.ledger.close()
        hub.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory            : {peak:6.0f} MiB (max RSS)")


if __name__ == "__main__":
    main()
