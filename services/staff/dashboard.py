"""The console's landing page: today's numbers (China Standard Time), read from the tables themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from core.clock import CHINA_TZ, china_day, utcnow
from models.accounts import Account, CardTransfer
from models.enums import DebitStatus, TransferStatus
from models.partners import PartnerDebit


@dataclass(frozen=True)
class Today:
    day: date
    openings: int  # accounts opened today
    debits: int  # partner debits booked today (succeeded, in arrears or settled since)
    refusals: int  # partner debits refused today (risk control, a restricted or closed account)
    held: int  # top-ups and withdrawals held by risk control now, whenever they came


async def today() -> Today:
    day = china_day(utcnow())
    # in UTC, as the columns hold it (SQLite compares the stored text)
    start = datetime.combine(day, time(0), tzinfo=CHINA_TZ).astimezone(timezone.utc)
    end = start + timedelta(days=1)
    return Today(
        day=day,
        openings=await Account.filter(opened_at__gte=start, opened_at__lt=end).count(),
        debits=await PartnerDebit.filter(booked_day=day).exclude(status=DebitStatus.REFUSED).count(),
        refusals=await PartnerDebit.filter(booked_day=day, status=DebitStatus.REFUSED).count(),
        held=await CardTransfer.filter(status=TransferStatus.HELD).count(),
    )
