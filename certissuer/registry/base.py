"""What every part of the register shares: the database, the lab, the options, the types.

`Register` (`certissuer.registry.register`) is built from this base and the checks, the
import/export and the recall parts.

>>> base = RegisterBase(ledger.engine, lab_code="DT01")  # doctest: +SKIP
>>> base.enabled()  # doctest: +SKIP
False
"""

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from certissuer.errors import ConfigError, LedgerError
from certissuer.registry.tables import InstrumentType, Lab, load_instrument_types

__all__ = ["RegisterBase"]


class RegisterBase:
    """The register of one lab, in the ledger database behind `engine` (see `Register`).

    `lab_code` is the lab's code ([lab] code); `instrument_types` a TOML cycle table that
    replaces the shipped one when the lab is added; `outside_scope` what to do with work
    outside the accreditation scope: ``refuse``, or ``unaccredited`` (issue without the
    accreditation mark, saying so on the certificate).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        lab_code: str,
        instrument_types: Path | None = None,
        outside_scope: str = "refuse",
    ) -> None:
        if outside_scope not in {"refuse", "unaccredited"}:
            raise ConfigError(
                "[registry] outside_scope must be 'refuse' or 'unaccredited', "
                f"got {outside_scope!r}"
            )
        self.engine = engine
        self.lab_code = lab_code
        self.instrument_types = instrument_types
        self.outside_scope = outside_scope
        self._table: list[InstrumentType] | None = None
        self._held: list[InstrumentType] | None = None
        """The register's types, read once (`cycle_types`); this object's writes forget them."""

    def cycle_types(self) -> list[InstrumentType]:
        """The cycle table the checks use: the register's types once it holds some (the lab's
        own, loaded by ``registry add lab``), else the profile's `instrument_types` file or the
        shipped table, read once. So the checks that need only the table run without a
        register. The register's types are read once per object (one run), not per record;
        this object's own writes to the register read them again."""
        if self._held is None:
            try:
                with self.session() as s:
                    self._held = list(s.exec(select(InstrumentType)).all())
            except SQLAlchemyError as exc:
                raise LedgerError(f"the register cannot be read: {exc}") from exc
        if self._held:
            return self._held
        if self._table is None:
            self._table = load_instrument_types(self.instrument_types)
        return self._table

    def session(self) -> Session:
        """A session on the register's database (rows stay loaded after commit)."""
        return Session(self.engine, expire_on_commit=False)

    # -- state ---------------------------------------------------------------------------

    def enabled(self) -> bool:
        """True when the register holds this lab: then every issue is checked against it."""
        try:
            with self.session() as s:
                return s.get(Lab, self.lab_code) is not None
        except SQLAlchemyError as exc:
            raise LedgerError(f"the register cannot be read: {exc}") from exc

    def seed_types(self, path: Path | None = None, *, replace: bool = False) -> int:
        """Load the cycle table (`path`, the profile's, or the shipped list) into the register.

        Existing types are kept unless `replace`. Returns the number of types written.
        """
        types = load_instrument_types(path or self.instrument_types)
        written = 0
        with self.session() as s:
            for t in types:
                old = s.get(InstrumentType, t.code)
                if old is not None and not replace:
                    continue
                if old is not None:
                    s.delete(old)
                    s.flush()
                s.add(t)
                written += 1
            s.commit()
        self._held = None
        return written
