"""A month of ordinary generated traffic, for trying rule sets on (``services.risk.replay.simulate``).

``month_of_traffic(users, seed, start)`` returns the ``Movement``s of ``users`` ordinary customers over
one month, sorted by time, the same list for the same arguments (one ``random.Random(seed)`` drives
everything; no clock, no global state).

The month: day 0 is the China-time day of ``start`` (the opening day), days 1..30 are the month of use.
Every time below is China time (+08:00); the movements carry aware UTC datetimes.

Each user has, of their own: a user id, an account id, an ID-number index, a bank card, a device, a
plate and an ETC card (every blind index an opaque unique string), a home and a work place around
Beijing (lat 39.6-40.2, lng 116.0-116.8), 10-40 km apart.

- **Opening.** An ``account_opening`` on day 0 between 08:00 and 12:00, with ``id``, ``bank_card`` and
  ``device`` and the user id only (as ``services.accounts.opening`` sends it: the account does not
  exist yet).
- **Top-ups.** The first 5-60 minutes after opening, then about weekly (every 6-8 days, 08:00-23:00),
  50,000-100,000 fen in whole yuan, from the user's own bank card and device, with ``balance_fen``.
- **Balance.** 0 before the first top-up; top-ups add, debits and the withdrawal subtract. Debits may
  take it below 0 (the partners' debits are not refused for want of balance here).
- **Withdrawal.** ~10% of users withdraw once, 1-3 hours after a top-up in the second half of the
  month, 20-50% of their balance, from their own device (skipped in the rare case the balance is not
  positive then).
- **Commuters (~70%).** On workdays (Mon-Fri), 95% of them, a morning toll 07:00-09:00 and an evening
  toll 17:30-19:30 (500-3,500 fen each), each at a gantry of their own on the route (a point between
  home and work: one gantry for the morning, one for the evening).
- **The others (~30%).** 2-4 driving days a week: a toll 09:00-15:00 at a gantry between home and
  somewhere in Beijing, and the way back through the same gantry 2-6 hours later.
- **Fuel.** Weekly, 20,000-45,000 fen, within 3 km of home, in daytime (08:00-18:00; commuters at the
  weekend, but for the month's last two days, a Monday and a Tuesday with the default start).
- **Parking.** 2-3 times a week, 500-4,000 fen: on a workday a commuter parks within 3 km of work
  (09:30-17:00), otherwise within 8 km of home (09:00-21:00). 1% of parkings are at night, 23:00-02:00,
  within 3 km of home.
- **Car wash.** 1-2 times a month, 2,500-6,000 fen, 09:00-19:00, no location.
- **Weekend trips (~30% of users).** 1-2 trips, on a Saturday or Sunday: a toll at an expressway exit
  15-30 km out of home at 07:00-11:00, and a toll at the destination 100-300 km beyond it, timed so the
  straight line between the two implies 60-110 km/h; both 2,000-15,000 fen. The user comes back by
  roads without tolls (no toll on the way back) and nothing else of theirs carrying a location happens
  from 90 minutes before leaving until they can be home again at 70 km/h, plus an hour.

Tolls, fuel and parking carry the ``location`` the partner sends; car washes none. Partner debits carry
``etc_card``, ``plate``, ``merchant`` and ``partner`` (a few fixed partner ids and a few merchant names
per category), as ``services.partners.debits`` sends them.

**Physically possible.** After generation, the located debits of each plate are checked in time order:
a debit more than 5 km from the one before it implying more than 120 km/h is dropped (never a trip
toll). The windows above make that rare; ``dropped`` counts it.

What ordinary traffic does to the baseline rules (``risk/baseline.json``): nothing should fire. The
largest day (a trip: two tolls of at most 150 yuan, fuel, parking, a wash) stays far under
``daily-spend``'s 3,000 yuan; fuel (at most 450 yuan) is under ``unusual-spend``'s 500-yuan floor; no
plate moves faster than 120 km/h, let alone 300; no card tops up twice in an hour; withdrawals are from
the device the account was opened with. ``night-first-use`` (shadow) never fires: a user's first debit
always follows their first top-up, so the account is never first seen by a debit, at night or not.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from core.clock import CHINA_TZ
from services.risk.engine import Movement, distance_km

DAYS = 30  # days of use after the opening day
LAT = (39.6, 40.2)
LNG = (116.0, 116.8)
KM_PER_DEG = 6371.0088 * math.pi / 180  # what engine.distance_km uses
DEFAULT_START = datetime(2025, 3, 2, tzinfo=CHINA_TZ)  # a Sunday: opening day, then Monday 3 March on
MAX_KMH = 120.0  # what an ordinary car does between two located debits
MAX_TRIP_KMH, MIN_TRIP_KMH = 110.0, 60.0

PARTNERS = {  # category -> the partners that send it
    "toll": ("pt-etc-beijing", "pt-etc-expressway"),
    "parking": ("pt-city-parking",),
    "fuel": ("pt-fuel-chain",),
    "carwash": ("pt-city-parking", "pt-carwash"),
}
MERCHANTS = {
    "toll": ("jing-zang-expressway", "jing-gang-ao-expressway", "jing-cheng-expressway", "airport-expressway",
             "fifth-ring-road"),
    "parking": ("wangfujing-parking", "zhongguancun-parking", "cbd-tower-parking", "olympic-park-parking"),
    "fuel": ("sinopec-station", "petrochina-station", "shell-station"),
    "carwash": ("quick-wash", "shine-carwash", "blue-sky-wash"),
}


@dataclass
class User:
    uid: int
    account: int
    id_index: str
    bank_card: str
    device: str
    plate: str
    etc_card: str
    home: tuple[float, float]
    work: tuple[float, float]
    commuter: bool
    tripper: bool
    gantries: tuple[tuple[float, float], tuple[float, float]] = field(default=((0.0, 0.0), (0.0, 0.0)))


@dataclass
class _Draft:
    at: datetime
    subject: str
    amount_fen: int = 0
    category: str | None = None
    location: tuple[float, float] | None = None
    trip: bool = False  # a weekend-trip toll: never dropped
    share: float = 0.0  # withdrawals: of the balance


def offset(point: tuple[float, float], km: float, bearing_deg: float) -> tuple[float, float]:
    """The point ``km`` from ``point`` towards ``bearing_deg`` (0 north, 90 east), flat-earth: good to
    well under 1% at these distances (callers that need the exact distance measure it)."""
    lat, lng = point
    b = math.radians(bearing_deg)
    return (lat + km * math.cos(b) / KM_PER_DEG,
            lng + km * math.sin(b) / (KM_PER_DEG * math.cos(math.radians(lat))))


def _near(rng: random.Random, point: tuple[float, float], radius_km: float) -> tuple[float, float]:
    return offset(point, radius_km * math.sqrt(rng.random()), rng.uniform(0, 360))


def _in_beijing(point: tuple[float, float]) -> bool:
    return LAT[0] <= point[0] <= LAT[1] and LNG[0] <= point[1] <= LNG[1]


def _between(rng: random.Random, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    f = rng.uniform(0.2, 0.8)
    return _near(rng, (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])), 0.5)


def _index(rng: random.Random, kind: str, uid: int) -> str:
    return f"{kind}{uid:06d}{rng.getrandbits(64):016x}"  # opaque, unique per user


def _user(rng: random.Random, uid: int) -> User:
    while True:
        home = (rng.uniform(*LAT), rng.uniform(*LNG))
        work = offset(home, rng.uniform(10.5, 39.5), rng.uniform(0, 360))
        if _in_beijing(work) and 10 <= distance_km(*home, *work) <= 40:
            break
    user = User(uid, 100_000 + uid, _index(rng, "id", uid), _index(rng, "bc", uid), _index(rng, "dv", uid),
                _index(rng, "pl", uid), _index(rng, "etc", uid), home, work,
                commuter=rng.random() < 0.7, tripper=rng.random() < 0.3)
    user.gantries = (_between(rng, home, work), _between(rng, home, work))
    return user


class _Clock:
    def __init__(self, start: datetime) -> None:
        local = start.astimezone(CHINA_TZ)
        self.day0 = datetime(local.year, local.month, local.day, tzinfo=CHINA_TZ)

    def at(self, rng: random.Random, day: int, from_h: float, to_h: float) -> datetime:
        """A random second on ``day`` between ``from_h`` and ``to_h`` (China time; may pass midnight)."""
        seconds = rng.uniform(from_h * 3600, to_h * 3600)
        return (self.day0 + timedelta(days=day, seconds=int(seconds))).astimezone(UTC)

    def midnight(self, day: int) -> datetime:
        return (self.day0 + timedelta(days=day)).astimezone(UTC)

    def weekday(self, day: int) -> int:
        return (self.day0 + timedelta(days=day)).weekday()


def _plan(rng: random.Random, user: User, clock: _Clock) -> list[_Draft]:
    drafts: list[_Draft] = []

    def debit(at: datetime, category: str, low: int, high: int, location: tuple[float, float] | None = None,
              trip: bool = False) -> None:
        drafts.append(_Draft(at, "partner_debit", rng.randint(low, high), category, location, trip))

    opened = clock.at(rng, 0, 8, 12)
    drafts.append(_Draft(opened, "account_opening"))
    top_ups = [opened + timedelta(seconds=rng.randint(300, 3600))]
    day = 0
    while True:
        day += rng.randint(6, 8)
        if day > DAYS:
            break
        top_ups.append(clock.at(rng, day, 8, 23))
    drafts += [_Draft(at, "top_up", rng.randint(500, 1000) * 100) for at in top_ups]
    if rng.random() < 0.10:
        later = [at for at in top_ups if at >= clock.midnight(DAYS // 2)]
        if later:
            when = rng.choice(later) + timedelta(seconds=rng.randint(3600, 3 * 3600))
            drafts.append(_Draft(when, "withdrawal", share=rng.uniform(0.2, 0.5)))

    for week in range(0, DAYS, 7):
        days = list(range(week + 1, min(week + 8, DAYS + 1)))
        weekend = [d for d in days if clock.weekday(d) >= 5]
        # fuel, weekly, near home in daytime
        fuel_days = weekend if user.commuter and weekend else days
        debit(clock.at(rng, rng.choice(fuel_days), 8, 18), "fuel", 20_000, 45_000, _near(rng, user.home, 3))
        # parking, 2-3 times a week
        for d in rng.sample(days, max(1, round(rng.randint(2, 3) * len(days) / 7))):
            if rng.random() < 0.01:
                debit(clock.at(rng, d, 23, 26), "parking", 500, 4000, _near(rng, user.home, 3))
            elif user.commuter and clock.weekday(d) < 5:
                debit(clock.at(rng, d, 9.5, 17), "parking", 500, 4000, _near(rng, user.work, 3))
            else:
                debit(clock.at(rng, d, 9, 21), "parking", 500, 4000, _near(rng, user.home, 8))
        # the others drive 2-4 days a week, there and back through one gantry
        if not user.commuter:
            for d in rng.sample(days, max(1, round(rng.randint(2, 4) * len(days) / 7))):
                while True:
                    there = (rng.uniform(*LAT), rng.uniform(*LNG))
                    if distance_km(*user.home, *there) >= 5:
                        break
                gantry = _between(rng, user.home, there)
                out = clock.at(rng, d, 9, 15)
                debit(out, "toll", 500, 3500, gantry)
                debit(out + timedelta(seconds=rng.randint(2 * 3600, 6 * 3600)), "toll", 500, 3500, gantry)

    if user.commuter:
        for d in range(1, DAYS + 1):
            if clock.weekday(d) < 5 and rng.random() < 0.95:
                debit(clock.at(rng, d, 7, 9), "toll", 500, 3500, user.gantries[0])
                debit(clock.at(rng, d, 17.5, 19.5), "toll", 500, 3500, user.gantries[1])

    for _ in range(rng.randint(1, 2)):  # car wash, 1-2 a month
        debit(clock.at(rng, rng.randint(1, DAYS), 9, 19), "carwash", 2500, 6000)

    busy: list[tuple[datetime, datetime]] = []
    if user.tripper:
        weekend_days = [d for d in range(1, DAYS + 1) if clock.weekday(d) >= 5]
        for d in sorted(rng.sample(weekend_days, rng.randint(1, 2))):
            bearing = rng.uniform(0, 360)
            exit_ = offset(user.home, rng.uniform(15, 30), bearing)
            there = offset(exit_, rng.uniform(100, 300), bearing + rng.uniform(-20, 20))
            km = distance_km(*exit_, *there)
            leave = clock.at(rng, d, 7, 11)
            arrive = leave + timedelta(hours=km / rng.uniform(MIN_TRIP_KMH + 1, MAX_TRIP_KMH - 1))
            back = arrive + timedelta(hours=distance_km(*there, *user.home) / 70 + 1)
            if any(a <= back and leave - timedelta(hours=1.5) <= b for a, b in busy):
                continue  # overlaps the trip before
            debit(leave, "toll", 2000, 15_000, exit_, trip=True)
            debit(arrive.replace(microsecond=0), "toll", 2000, 15_000, there, trip=True)
            busy.append((leave - timedelta(hours=1.5), back))
    if busy:
        drafts = [x for x in drafts if x.trip or x.location is None
                  or not any(a <= x.at <= b for a, b in busy)]
    end = clock.midnight(DAYS + 1)
    return [x for x in drafts if x.at < end]


def _possible(drafts: list[_Draft]) -> tuple[list[_Draft], int]:
    """Drop located debits that would have the plate move faster than ``MAX_KMH`` (never trip tolls)."""
    dropped = 0
    while True:
        located = [x for x in drafts if x.location is not None]
        bad = None
        for a, b in itertools.pairwise(located):
            km = distance_km(*a.location, *b.location)
            hours = max((b.at - a.at).total_seconds(), 1.0) / 3600
            if km > 5 and km / hours > MAX_KMH:
                bad = b if not b.trip else a
                break
        if bad is None:
            return drafts, dropped
        assert not bad.trip, "two trip tolls too close together"
        drafts = [x for x in drafts if x is not bad]
        dropped += 1


@dataclass
class Traffic:
    movements: list[Movement]
    users: list[User]
    dropped: int  # located debits dropped as physically impossible


def generate(users: int = 1000, seed: int = 20250302, start: datetime = DEFAULT_START) -> Traffic:
    rng = random.Random(seed)
    clock = _Clock(start)
    people = [_user(rng, uid) for uid in range(1, users + 1)]
    movements: list[Movement] = []
    dropped = 0
    for user in people:
        drafts = sorted(_plan(rng, user, clock), key=lambda x: (x.at, x.subject))
        drafts, n = _possible(drafts)
        dropped += n
        balance = 0
        for n, x in enumerate(drafts):
            ref = f"{x.subject}:{user.uid}:{n}"
            if x.subject == "account_opening":
                movements.append(Movement("account_opening", x.at, user_id=user.uid, reference=ref,
                                          values={"id": user.id_index, "bank_card": user.bank_card,
                                                  "device": user.device}))
            elif x.subject == "top_up":
                movements.append(Movement("top_up", x.at, x.amount_fen, account_id=user.account, user_id=user.uid,
                                          reference=ref, balance_fen=balance,
                                          values={"bank_card": user.bank_card, "device": user.device}))
                balance += x.amount_fen
            elif x.subject == "withdrawal":
                amount = int(balance * x.share) // 100 * 100
                if amount <= 0:
                    continue
                movements.append(Movement("withdrawal", x.at, amount, account_id=user.account, user_id=user.uid,
                                          reference=ref, balance_fen=balance,
                                          values={"bank_card": user.bank_card, "device": user.device}))
                balance -= amount
            else:
                movements.append(Movement(
                    "partner_debit", x.at, x.amount_fen, account_id=user.account, user_id=user.uid,
                    category=x.category, reference=ref, location=x.location,
                    values={"etc_card": user.etc_card, "plate": user.plate,
                            "merchant": MERCHANTS[x.category][(user.uid + n) % len(MERCHANTS[x.category])],
                            "partner": PARTNERS[x.category][user.uid % len(PARTNERS[x.category])]}))
                balance -= x.amount_fen
    movements.sort(key=lambda m: (m.at, m.reference))
    return Traffic(movements, people, dropped)


def month_of_traffic(users: int = 1000, seed: int = 20250302, start: datetime = DEFAULT_START) -> list[Movement]:
    """A month of ordinary traffic for ``users`` users, sorted by ``at`` (see the module docstring)."""
    return generate(users, seed, start).movements
