"""The strict-reading attack corpus through the verification page and the JSON API.

Every case of `tests/test_attacks.py` on strict reading (issue 14) is uploaded to
``POST /verify`` and ``POST /api/v1/verify`` and must be refused there too: the page runs the
same `Verifier` in its worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from . import test_attacks as _attacks
from .test_attacks import STRICT_ATTACKS, Attack, Lab, nested_arrays_pdf

# The corpus's module fixtures, shared (each test module gets its own instances).
lab, lab_ledger, lab_env = _attacks.lab, _attacks.lab_ledger, _attacks.lab_env
genuine, corpus = _attacks.genuine, _attacks.corpus


@pytest.fixture(scope="module")
def client(lab_env: Lab) -> Iterator[TestClient]:
    from certissuer.web import create_app

    settings = lab_env.settings.replace(web_rate_limit=0, web_pdf_workers=1)
    with TestClient(create_app(settings)) as c:
        yield c


def _upload(client: TestClient, data: bytes, *, api: bool) -> Any:
    path = "/api/v1/verify" if api else "/verify"
    return client.post(path, files={"file": ("c.pdf", data, "application/pdf")})


def test_genuine_base_is_valid_over_http(lab_env: Lab, client: TestClient) -> None:
    for base in ("kd", "hc"):
        assert _upload(client, lab_env.base(base), api=True).json()["verdict"] == "valid"


@pytest.mark.parametrize("attack", STRICT_ATTACKS, ids=[a.name for a in STRICT_ATTACKS])
def test_corpus_is_refused_over_http(
    attack: Attack, corpus: dict[str, Any], client: TestClient
) -> None:
    data, _ = corpus[attack.name]
    page = _upload(client, data, api=False)
    assert page.status_code == 200
    assert 'data-verdict="altered"' in page.text and "NOT GENUINE" in page.text
    body = _upload(client, data, api=True).json()
    assert body["verdict"] == "altered" and body["ok"] is False
    assert any(attack.reason in r for r in body["reasons"]), body["reasons"]


def test_unreadable_structure_is_refused_over_http(client: TestClient) -> None:
    data = nested_arrays_pdf(100_000)
    for api in (False, True):
        answer = _upload(client, data, api=api)
        assert answer.status_code in (415, 422), answer.text
        assert "Traceback" not in answer.text
