"""``certissuer keys`` and ``trial-services``: the keys of a demo or trial PKI for a lab, and
the trial CA's time-stamping, OCSP and CRL services (NOT FOR PRODUCTION); key rotation,
compromised keys and ``reissue --compromised`` (the key register, `certissuer.key_register`)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from certissuer._vn import VIETNAM_TZ
from certissuer.cli._app import app
from certissuer.cli._state import State, issuer, open_ledger, passphrase, print_table, say, warn
from certissuer.errors import ConfigError

if TYPE_CHECKING:
    from certissuer.key_register import RegisteredKey

__all__ = [
    "keys_app",
    "keys_compromised",
    "keys_init",
    "keys_list",
    "keys_publish",
    "keys_revoke_trial",
    "keys_rotate",
    "reissue",
    "trial_services",
]

keys_app = typer.Typer(
    help="Make keys for a lab (demo and trial PKI); rotate them, record a compromised one.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


def _passphrase(prompt: str, *, confirm: bool) -> bytes:
    env = os.environ.get("CERTISSUER_P12_PASSPHRASE")
    if env is not None:
        return env.encode()
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)).encode()
    raise ConfigError(f"set $CERTISSUER_P12_PASSPHRASE to the {prompt[0].lower() + prompt[1:]}")


@keys_app.command("init")
def keys_init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new keys.")],
    organisation: Annotated[str, typer.Option(help="Organisation name in the certificates.")] = (
        "certissuer demo lab"
    ),
    signer: Annotated[
        str | None,
        typer.Option(help="Signer's name (signer.p12; with --person only when given)."),
    ] = None,
    person: Annotated[
        list[str] | None,
        typer.Option(
            "--person",
            help="A person's name, exactly as printed; makes a trial PKI with a key per person.",
        ),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="The roles of the --person before it: verifier, head, signatory "
            "(comma-separated for several).",
        ),
    ] = None,
    services_url: Annotated[
        str | None,
        typer.Option(
            help="Where the trial services answer (default with --person: http://127.0.0.1:8790)."
        ),
    ] = None,
    key_type: Annotated[str, typer.Option(help="rsa2048 or p256.")] = "rsa2048",
    force: Annotated[bool, typer.Option(help="Overwrite existing key files.")] = False,
) -> None:
    """Make a CA, a PKCS#12 signer (or one per --person) and a QR token key (a self-made PKI).

    With --person (or --services-url) the CA is a trial CA, NOT FOR PRODUCTION: its
    certificates name a CRL and an OCSP responder that 'certissuer trial-services DIR' answers,
    with a time-stamping authority. Prints the lab profile lines that use the new keys.
    """
    from certissuer.keys import Person, Role, make_keys, profile_snippet

    names, roles = person or [], role or []
    if len(roles) != len(names):
        raise ConfigError(
            f"{len(names)} --person but {len(roles)} --role given",
            hint='follow each --person with its --role, e.g. --person "Lê Hoàng Phúc" '
            "--role head,signatory",
        )
    people = [
        Person(
            name.strip(),
            tuple(Role.parse(r, where=f"--role of {name!r}") for r in spec.split(",") if r.strip()),
        )
        for name, spec in zip(names, roles, strict=True)
    ]
    paths = make_keys(
        directory,
        passphrase=_passphrase("Passphrase for the new keys", confirm=True),
        organisation=organisation,
        signer_name=signer if people else (signer or "Demo signer"),
        key_type=key_type,
        overwrite=force,
        people=people,
        services_url=services_url,
    )
    rows = [("CA certificate", paths.ca_cert)]
    if paths.signer_p12 is not None:
        rows.append(("signer (PKCS#12)", paths.signer_p12))
    rows += [(f"{p.name} ({', '.join(p.roles)})", p.pkcs12) for p in paths.people]
    if paths.tsa_cert is not None and paths.index is not None:
        rows += [("TSA certificate", paths.tsa_cert), ("trial CA index", paths.index)]
    rows += [("token key", paths.token_key), ("token public key", paths.token_public)]
    for name, p in rows:
        say(f"{name:18} {p}")
    if paths.services_url:
        warn(
            f"Trial CA - NOT FOR PRODUCTION. Start its services with "
            f"'certissuer trial-services {directory}' ({paths.services_url})."
        )
    say("")
    say("# lab profile lines for these keys:")
    say(profile_snippet(paths).rstrip("\n"))


@keys_app.command("revoke-trial")
def keys_revoke_trial(
    directory: Annotated[Path, typer.Argument(help="The trial PKI's folder.")],
    who: Annotated[str, typer.Argument(help="Serial number (hex) or a person's name.")],
) -> None:
    """Revoke a certificate of a trial CA: its OCSP and CRL say so from the next request on."""
    from certissuer.keys import revoke_trial

    serial, subject = revoke_trial(directory, who)
    say(f"revoked {serial:x}  {subject}")


@app.command("trial-services")
def trial_services(
    directory: Annotated[Path, typer.Argument(help="The trial PKI's folder (keys init --person).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8790,
) -> None:
    """Answer a trial CA's time stamps (RFC 3161), OCSP and CRL on HOST:PORT. NOT FOR PRODUCTION.

    The CA's and TSA's keys are opened with $CERTISSUER_P12_PASSPHRASE (or a prompt). Runs
    until interrupted (Ctrl-C or SIGTERM).
    """
    from certissuer.trial import BANNER, TrialAuthority, TrialServer

    warn(BANNER)
    authority = TrialAuthority.load(
        directory, _passphrase("Passphrase of the trial CA", confirm=False)
    )
    server = TrialServer(authority, host, port)
    warn(f"listening on {server.url}  (POST /tsa, POST /ocsp, GET /ocsp/<base64>, GET /crl)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        warn("stopped")


# -- rotation, compromise, publication and reissue (the key register) ------------------------


def _moment(text: str, option: str) -> datetime:
    """An ISO 8601 time or date; without a zone it is Vietnam's (a date: its midnight)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected an ISO 8601 time such as 2026-12-01T08:00 or "
            "2026-12-01T01:00Z (without a zone: Vietnam's time)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM_TZ)).astimezone(UTC)


def _key_row(key: RegisteredKey) -> tuple[str, ...]:
    from certissuer._vn import local_time

    def shown(moment: datetime | None, empty: str) -> str:
        return empty if moment is None else f"{local_time(moment):%Y-%m-%d %H:%M}"

    return (
        key.kind.value,
        key.kid if key.kind.value == "token" else key.kid[:16],
        shown(key.not_before, "-"),
        shown(key.not_after, "in use" if key.compromised_since is None else "-"),
        shown(key.compromised_since, ""),
        key.label,
    )


def _say_affected(rows: list[tuple[str, str, str]]) -> None:
    print_table(("number", "kind", "issued (UTC+7)"), rows)


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    token: Annotated[bool, typer.Option("--token", help="Rotate the QR token key.")] = False,
    signing: Annotated[
        bool, typer.Option("--signing", help="Rotate the signing key ([signing] pkcs12).")
    ] = False,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="The new key instead of a fresh one: a PEM private key (--token) or a PKCS#12 "
            "file from the lab's CA (--signing, opened with the same passphrase).",
        ),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option(
            help="--signing: only record this certificate (PEM) as the one in use from now "
            "(a USB token's or a person's new certificate); no key file changes."
        ),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(
            help="--signing: the folder with ca.pem and ca-key.pem that issues the new "
            "certificate (default: the PKCS#12 file's folder)."
        ),
    ] = None,
) -> None:
    """Replace the token key or the signing key; the old one keeps verifying what it made.

    The new key is written where the profile points ([token] key, [signing] pkcs12), the old
    file kept beside it, and key-register.json (beside the token key) gives each key its
    window: the old one's ends now, the new one's starts now. Tokens and PDFs made with an
    older key keep verifying when they were made inside its window.
    """
    from certissuer import key_register
    from certissuer.token import TokenKey

    if token == signing:
        raise ConfigError("give one of --token or --signing")
    state: State = ctx.obj
    settings = state.settings()
    if token:
        if cert is not None or ca is not None:
            raise ConfigError("--cert and --ca go with --signing")
        new = None if from_file is None else TokenKey.load(from_file)
        old, entry, kept = key_register.rotate_token(settings, new=new)
        say(f"token key {entry.kid} in use from now ({settings.token_key})")
        say(f"token key {old.kid} retired: verifies what it signed until now; kept as {kept}")
        say("publish the new key list: certissuer keys publish --out keys.json")
        return
    if cert is not None:
        certificate = key_register.load_certificate(cert)
        retired, entry = key_register.register_signing(settings, certificate)
        say(f"signing certificate {entry.kid[:16]} in use from now ({entry.label})")
        for old_entry in retired:
            say(f"signing certificate {old_entry.kid[:16]} retired ({old_entry.label})")
        return
    if settings.signing_pkcs12 is None:
        raise ConfigError(
            "no [signing] pkcs12 configured to rotate",
            hint="record a USB token's new certificate with --signing --cert FILE",
        )
    secret = passphrase(settings)
    if secret is None:
        raise ConfigError("a PKCS#12 file needs its passphrase")
    if from_file is not None:
        new_p12 = key_register.read_key_file(from_file)
    else:
        from certissuer.keys import renew_signer

        new_p12 = renew_signer(
            ca or settings.signing_pkcs12.parent,
            settings.signing_pkcs12.read_bytes(),
            passphrase=secret,
        )
    old, entry, kept = key_register.rotate_signing(settings, new_p12, secret)
    say(f"signing certificate {entry.kid[:16]} in use from now ({settings.signing_pkcs12})")
    say(f"signing certificate {old.kid[:16]} retired; its file kept as {kept}")


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """Every key of the key register: kind, id, window (UTC+7), compromised since."""
    from certissuer.key_register import lab_token_keys

    state: State = ctx.obj
    _, register = lab_token_keys(state.settings())
    if not register.keys:
        say("no key register yet: the key in use is the only one (certissuer keys rotate)")
        return
    print_table(
        ("kind", "id", "from (UTC+7)", "until (UTC+7)", "compromised since", "name"),
        [_key_row(k) for k in register.keys],
    )


@keys_app.command("compromised")
def keys_compromised(
    ctx: typer.Context,
    kid: Annotated[str, typer.Argument(help="The key's id (certissuer keys list), or its start.")],
    since: Annotated[
        str,
        typer.Option(
            help="When the key may have got out, ISO 8601 (without a zone: Vietnam's time)."
        ),
    ],
) -> None:
    """Record that a retired key is compromised: what it made from --since on is NOT GENUINE.

    Lists the certificates affected; 'certissuer reissue --compromised KID' issues them again
    under new numbers.
    """
    from certissuer import key_register
    from certissuer._vn import local_time
    from certissuer.reissue import affected

    state: State = ctx.obj
    settings = state.settings()
    key = key_register.mark_compromised(settings, kid, _moment(since, "--since"))
    assert key.compromised_since is not None
    say(
        f"{key.kind.value} key {key.kid[:16]} compromised since "
        f"{local_time(key.compromised_since):%Y-%m-%d %H:%M} (UTC+7): its tokens and "
        "signatures from then on verify as NOT GENUINE (key compromised)"
    )
    entries = affected(open_ledger(settings), key)
    if not entries:
        say("no certificate is affected")
        return
    say(f"{len(entries)} certificate(s) affected:")
    _say_affected(
        [(e.number, e.kind, f"{local_time(e.issued_at):%Y-%m-%d %H:%M}") for e in entries]
    )
    say(f"reissue them: certissuer reissue --compromised {key.kid[:16]}")


@keys_app.command("publish")
def keys_publish(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write keys.json.")],
) -> None:
    """Write the lab's signed token key list, as the page serves it at
    /.well-known/certissuer/keys.json: each key with its window, signed by the key in use."""
    from certissuer._files import write_atomic
    from certissuer.key_register import key_set, lab_token_keys
    from certissuer.token import TokenKey, keys_document

    state: State = ctx.obj
    settings = state.settings()
    if settings.token_key is None:
        raise ConfigError("no token key configured", hint="set [token] key in the lab profile")
    signer = TokenKey.load(settings.token_key)
    keys, register = lab_token_keys(settings)
    dates = open_ledger(settings).token_key_dates()
    lab = {
        "code": settings.lab_code,
        "name_vi": settings.lab_name_vi,
        "name_en": settings.lab_name_en,
        "url_base": settings.token_url_base,
    }
    published = key_set(keys, register, dates, signer.public.kid)
    write_atomic(out, keys_document(published, signer=signer, lab=lab))
    say(f"wrote {out}: {len(published)} key(s), signed by token key {signer.public.kid.hex()}")
    say(f"pin the signer: sha256 {signer.public.fingerprint}")


@app.command("reissue")
def reissue(
    ctx: typer.Context,
    compromised: Annotated[
        str, typer.Option("--compromised", help="The compromised key's id (keys list).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the new PDFs.")] = Path(
        "out"
    ),
) -> None:
    """Issue again, under new numbers, every certificate a compromised key made after it was
    compromised; each old number is superseded by its new one."""
    from certissuer.key_register import lab_token_keys
    from certissuer.reissue import reissue as reissue_all

    state: State = ctx.obj
    settings = state.settings()
    key = lab_token_keys(settings)[1].resolve(compromised)
    if key.compromised_since is None:
        raise ConfigError(
            f"{key.kind.value} key {key.kid[:16]} is not recorded as compromised",
            hint=f"certissuer keys compromised {key.kid[:16]} --since TIME",
        )
    runner = issuer(state, out)
    done = reissue_all(runner, key, now=datetime.now(UTC))
    if any(r.new for r in done):
        runner.checkpoint()
    if not done:
        say("no certificate is affected")
        return
    print_table(("old number", "new number", "note"), [(r.old, r.new or "-", r.note) for r in done])
    new = sum(1 for r in done if r.new)
    say(f"{new} reissued, {len(done) - new} not reissued")
    raise typer.Exit(code=1 if any(r.refused for r in done) else 0)
