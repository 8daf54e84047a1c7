"""UtcDateTime: SQLite compares and returns instants as PostgreSQL's timestamptz does."""
from datetime import datetime, time, timedelta, timezone

import pytest
from sqlalchemy import Integer, create_engine, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from oss_common.calendar import TASHKENT
from oss_common.database import UtcDateTime


class Base(DeclarativeBase):
    pass


class Moment(Base):
    __tablename__ = "moments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session


def test_a_tashkent_day_bound_selects_by_the_instant_not_by_its_wall_clock_digits(session):
    # 23:30 UTC on 5 December is 04:30 on 6 December in Tashkent.
    late_evening_utc = datetime(2026, 12, 5, 23, 30, tzinfo=timezone.utc)
    session.add(Moment(at=late_evening_utc))
    session.commit()
    sixth_in_tashkent = datetime.combine(late_evening_utc.astimezone(TASHKENT).date(), time.min, tzinfo=TASHKENT)
    on_the_sixth = select(Moment).where(Moment.at >= sixth_in_tashkent, Moment.at < sixth_in_tashkent + timedelta(days=1))
    assert session.scalars(on_the_sixth).all() != []
    on_the_fifth = select(Moment).where(Moment.at < sixth_in_tashkent)
    assert session.scalars(on_the_fifth).all() == []


def test_values_come_back_aware_in_utc(session):
    session.add(Moment(at=datetime(2026, 3, 21, 9, 0, tzinfo=TASHKENT)))
    session.commit()
    session.expire_all()
    stored = session.scalars(select(Moment)).one().at
    assert stored == datetime(2026, 3, 21, 4, 0, tzinfo=timezone.utc)
    assert stored.utcoffset() == timedelta(0)


def test_a_naive_datetime_is_refused_rather_than_guessed(session):
    session.add(Moment(at=datetime(2026, 3, 21, 9, 0)))
    with pytest.raises(StatementError, match="naive datetime"):
        session.commit()
