"""``engine.evaluate`` rule by rule: one small rule set per test, a ``MemoryHistory`` fed by hand, explicit
timestamps. And the rule-set schema refusing what it should."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.clock import CHINA_TZ
from services.risk import rules
from services.risk.engine import Movement, distance_km, evaluate, in_hours
from services.risk.history import MemoryHistory
from services.risk.replay import seen_of
from services.risk.rules import RuleSetFile, RuleSetInvalid

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 12, 4, 0, tzinfo=UTC)  # a Wednesday, 12:00 China time
BEIJING = (39.9042, 116.4074)
KM_PER_DEG_LAT = 6371.0088 * math.pi / 180  # along a meridian, exactly what distance_km measures


def rule_set(*rule_list: dict) -> RuleSetFile:
    return RuleSetFile.model_validate({"version": 3, "rules": list(rule_list)})


def rule(type_: str, **fields) -> dict:
    base = {"id": f"{type_.replace('_', '-')}-rule", "type": type_, "status": "active", "action": "review",
            "applies_to": ["partner_debit"]}
    return base | fields


def north(point: tuple[float, float], km: float) -> tuple[float, float]:
    return (point[0] + km / KM_PER_DEG_LAT, point[1])


def debit(at: datetime, amount: int = 1000, *, account: int = 1, user: int = 1, category: str = "toll",
          plate: str = "plate-a", location: tuple[float, float] | None = None, **values) -> Movement:
    return Movement("partner_debit", at, amount, account_id=account, user_id=user, category=category,
                    location=location, values={"plate": plate, "etc_card": f"etc-{plate}", "merchant": "m1",
                                               "partner": "p1", **values})


def top_up(at: datetime, amount: int = 50_000, *, account: int = 1, user: int = 1, card: str = "card-a",
           device: str = "dev-a", balance: int | None = 0) -> Movement:
    return Movement("top_up", at, amount, account_id=account, user_id=user, balance_fen=balance,
                    values={"bank_card": card, "device": device})


def withdrawal(at: datetime, amount: int, *, balance: int | None, user: int | None = 1,
               device: str = "dev-a") -> Movement:
    return Movement("withdrawal", at, amount, account_id=1, user_id=user, balance_fen=balance,
                    values={"bank_card": "card-a", "device": device})


def opening(at: datetime, *, user: int = 1, device: str = "dev-a") -> Movement:
    return Movement("account_opening", at, user_id=user, values={"id": f"id-{user}", "bank_card": f"card-{user}",
                                                                 "device": device})


class Feed:
    """A MemoryHistory fed movements (in time order), as ``simulate`` feeds it."""

    def __init__(self) -> None:
        self.history = MemoryHistory()
        self.n = 0

    def add(self, movement: Movement, *, counted: bool = True) -> Feed:
        self.n += 1
        self.history.add(seen_of(movement, self.n), counted=counted)
        return self

    async def decide(self, rs: RuleSetFile, movement: Movement, listed: dict[str, str] | None = None):
        return await evaluate(rs, movement, self.history, listed or {})


def fired(decision) -> list[str]:
    return [r["rule"] for r in decision.reasons]


# --- travel -------------------------------------------------------------------------------------------------

TRAVEL = rule("travel", action="block", max_speed_kmh=300, min_distance_km=50, window="1h")


def test_the_geometry_the_tests_rely_on():
    assert distance_km(*BEIJING, *north(BEIJING, 800)) == pytest.approx(800, abs=0.01)
    assert distance_km(*BEIJING, *north(BEIJING, 50)) == pytest.approx(50, abs=0.01)


async def test_travel_50_km_in_an_hour_passes():
    feed = Feed().add(debit(NOW - timedelta(minutes=60), location=BEIJING))
    d = await feed.decide(rule_set(TRAVEL | {"min_distance_km": 0}), debit(NOW, location=north(BEIJING, 50)))
    assert d.decision == "allow" and d.reasons == []


async def test_travel_800_km_in_10_minutes_fires_with_what_it_saw():
    feed = Feed().add(debit(NOW - timedelta(minutes=10), location=BEIJING))
    d = await feed.decide(rule_set(TRAVEL), debit(NOW, location=north(BEIJING, 800)))
    assert d.decision == "block"
    (reason,) = d.reasons
    assert reason["rule"] == "travel-rule" and reason["type"] == "travel" and reason["shadow"] is False
    assert reason["key"] == "plate" and reason["km"] == pytest.approx(800, abs=0.1)
    assert reason["minutes"] == 10.0 and reason["kmh"] == 4800 and reason["max_speed_kmh"] == 300


async def test_travel_counts_the_time_between_either_way_round():
    """A movement stamped a little before the last place seen (clocks differ) is still 800 km in 10 min."""
    feed = Feed().add(debit(NOW, location=BEIJING))
    d = await feed.decide(rule_set(TRAVEL), debit(NOW - timedelta(minutes=10), location=north(BEIJING, 800)))
    assert d.decision == "block" and d.reasons[0]["minutes"] == 10.0


async def test_travel_within_min_distance_never_fires():
    feed = Feed().add(debit(NOW - timedelta(seconds=30), location=BEIJING))
    d = await feed.decide(rule_set(TRAVEL), debit(NOW, location=north(BEIJING, 45)))  # 5,400 km/h, but 45 km
    assert d.decision == "allow" and d.reasons == []


async def test_travel_ignores_an_event_outside_the_window():
    feed = Feed().add(debit(NOW - timedelta(minutes=61), location=BEIJING))  # 800 km in 61 min: 787 km/h
    movement = debit(NOW, location=north(BEIJING, 800))
    assert (await feed.decide(rule_set(TRAVEL), movement)).reasons == []  # window 1h: not looked at
    assert fired(await feed.decide(rule_set(TRAVEL | {"window": "24h"}), movement)) == ["travel-rule"]


async def test_travel_compares_with_the_latest_counted_location_of_that_plate():
    feed = (Feed()
            .add(debit(NOW - timedelta(minutes=60), location=BEIJING))  # counted
            .add(debit(NOW - timedelta(minutes=10), location=north(BEIJING, -800)), counted=False)  # refused
            .add(debit(NOW - timedelta(minutes=5), location=north(BEIJING, -800), plate="plate-b"))  # another
            .add(debit(NOW - timedelta(minutes=2))))  # no location
    d = await feed.decide(rule_set(TRAVEL), debit(NOW, location=north(BEIJING, 60)))  # 60 km in an hour
    assert d.decision == "allow" and d.reasons == []


async def test_travel_needs_a_location():
    feed = Feed().add(debit(NOW - timedelta(minutes=10), location=BEIJING))
    assert (await feed.decide(rule_set(TRAVEL), debit(NOW))).reasons == []


# --- velocity by a key other than the account ---------------------------------------------------------------

async def test_velocity_by_plate_counts_the_rules_subjects_and_counted_events_only():
    rs = rule_set(rule("velocity", key="plate", window="1h", max_count=2))
    feed = (Feed()
            .add(debit(NOW - timedelta(minutes=50), account=1))
            .add(Movement("refund", NOW - timedelta(minutes=40), 500, account_id=1, values={"plate": "plate-a"}))
            .add(debit(NOW - timedelta(minutes=30), account=2), counted=False)  # refused: not counted
            .add(debit(NOW - timedelta(minutes=20), plate="plate-b")))  # another plate
    assert (await feed.decide(rs, debit(NOW, account=3))).reasons == []  # 2 with this one: not more than 2
    feed.add(debit(NOW - timedelta(minutes=10), account=2))  # the same plate through another account
    d = await feed.decide(rs, debit(NOW, account=3))
    assert d.decision == "review"
    (reason,) = d.reasons
    assert reason["key"] == "plate" and reason["window"] == "1h"
    assert reason["count"] == 3 and reason["amount_fen"] == 3000 and reason["max_count"] == 2


async def test_velocity_by_device_counts_openings_only():
    rs = rule_set(rule("velocity", key="device", window="24h", max_count=3, applies_to=["account_opening"]))
    feed = Feed()
    for user in (1, 2, 3):
        feed.add(opening(NOW - timedelta(hours=20 - user), user=user, device="dev-x"))
    feed.add(opening(NOW - timedelta(hours=2), user=4, device="dev-x"), counted=False)  # refused
    feed.add(top_up(NOW - timedelta(hours=1), device="dev-x"))  # not an opening
    feed.add(opening(NOW - timedelta(hours=1), user=5, device="dev-y"))
    d = await feed.decide(rs, opening(NOW, user=6, device="dev-x"))
    assert d.decision == "review" and d.reasons[0]["count"] == 4 and d.reasons[0]["key"] == "device"
    assert (await feed.decide(rs, opening(NOW, user=6, device="dev-y"))).reasons == []


async def test_velocity_window_is_sliding_and_excludes_its_very_start():
    rs = rule_set(rule("velocity", key="bank_card", window="1h", max_amount_fen=1000, applies_to=["top_up"]))
    feed = Feed().add(top_up(NOW - timedelta(hours=1), 600))  # exactly an hour before: out
    assert (await feed.decide(rs, top_up(NOW, 500))).reasons == []
    feed.add(top_up(NOW - timedelta(hours=1) + timedelta(seconds=1), 600))  # in
    d = await feed.decide(rs, top_up(NOW, 500))
    assert d.reasons[0]["amount_fen"] == 1100 and d.reasons[0]["count"] == 2


# --- unusual amount -----------------------------------------------------------------------------------------

UNUSUAL = rule("unusual_amount", factor=8, history_days=30, min_history=5, min_amount_fen=50_000)


def fuel(at: datetime, amount: int) -> Movement:
    return debit(at, amount, category="fuel")


async def test_unusual_amount_needs_min_history():
    feed = Feed()
    for day in range(4, 0, -1):
        feed.add(fuel(NOW - timedelta(days=day), 10_000))
    assert (await feed.decide(rule_set(UNUSUAL), fuel(NOW, 90_000))).reasons == []  # 4 of them: too few
    feed.add(fuel(NOW - timedelta(hours=1), 10_000))
    d = await feed.decide(rule_set(UNUSUAL), fuel(NOW, 90_000))
    assert d.decision == "review"
    assert d.reasons[0] | {"rule": None} == {"rule": None, "type": "unusual_amount", "action": "review",
                                             "shadow": False, "amount_fen": 90_000, "largest_fen": 10_000,
                                             "history": 5, "factor": 8.0}
    assert (await feed.decide(rule_set(UNUSUAL), fuel(NOW, 80_000))).reasons == []  # 8 times: not above


async def test_unusual_amount_compares_with_the_largest_of_the_category_within_history_days():
    feed = Feed().add(fuel(NOW - timedelta(days=40), 30_000))  # out of the 30 days
    for day in range(5, 0, -1):
        feed.add(fuel(NOW - timedelta(days=day), 10_000 + day))
        feed.add(debit(NOW - timedelta(days=day) + timedelta(hours=1), 20_000, category="parking"))  # another category
    d = await feed.decide(rule_set(UNUSUAL), fuel(NOW, 90_000))
    assert d.reasons[0]["largest_fen"] == 10_005 and d.reasons[0]["history"] == 5
    feed.add(fuel(NOW - timedelta(minutes=5), 12_000), counted=False)  # refused: not a largest
    assert (await feed.decide(rule_set(UNUSUAL), fuel(NOW, 90_000))).reasons[0]["largest_fen"] == 10_005
    feed.add(fuel(NOW - timedelta(minutes=1), 12_000))
    assert (await feed.decide(rule_set(UNUSUAL), fuel(NOW, 90_000))).reasons == []  # 7.5 times
    # a category with no history of its own: nothing to compare with
    assert (await feed.decide(rule_set(UNUSUAL), debit(NOW, 900_000, category="carwash"))).reasons == []


async def test_unusual_amount_has_a_floor():
    feed = Feed()
    for day in range(6, 0, -1):
        feed.add(fuel(NOW - timedelta(days=day), 100))
    assert (await feed.decide(rule_set(UNUSUAL), fuel(NOW, 50_000))).reasons == []  # 500x, but not above 500 yuan
    assert fired(await feed.decide(rule_set(UNUSUAL), fuel(NOW, 50_001))) == ["unusual-amount-rule"]


# --- new device ---------------------------------------------------------------------------------------------

NEW_DEVICE = rule("new_device", applies_to=["withdrawal"], recent_s=86400)
DRAIN = NEW_DEVICE | {"min_balance_share": 0.9}


async def test_new_device_never_seen_fires():
    d = await Feed().decide(rule_set(NEW_DEVICE), withdrawal(NOW, 1000, balance=100_000, device="dev-new"))
    assert d.decision == "review"
    assert d.reasons[0]["key"] == "device" and d.reasons[0]["first_seen_s_ago"] == 0
    assert d.reasons[0]["balance_share"] is None


async def test_new_device_seen_days_ago_is_not_new():
    feed = Feed().add(opening(NOW - timedelta(days=2), device="dev-a"))
    assert (await feed.decide(rule_set(NEW_DEVICE), withdrawal(NOW, 1000, balance=100_000))).reasons == []
    refused = Feed().add(top_up(NOW - timedelta(days=2), device="dev-a"), counted=False)  # seen, if refused
    assert (await refused.decide(rule_set(NEW_DEVICE), withdrawal(NOW, 1000, balance=100_000))).reasons == []


async def test_new_device_seen_recently_or_with_another_user_is_new():
    feed = Feed().add(opening(NOW - timedelta(days=2), user=2, device="dev-a"))  # another user's device
    feed.add(top_up(NOW - timedelta(hours=2), device="dev-a"))
    d = await feed.decide(rule_set(NEW_DEVICE), withdrawal(NOW, 1000, balance=100_000))
    assert d.reasons[0]["first_seen_s_ago"] == 7200


async def test_new_device_balance_share_gates_it():
    rs, feed = rule_set(DRAIN), Feed()
    d = await feed.decide(rs, withdrawal(NOW, 95_000, balance=100_000, device="dev-new"))
    assert d.decision == "review" and d.reasons[0]["balance_share"] == 0.95
    assert fired(await feed.decide(rs, withdrawal(NOW, 90_000, balance=100_000, device="dev-new"))) == ["new-device-rule"]
    assert (await feed.decide(rs, withdrawal(NOW, 50_000, balance=100_000, device="dev-new"))).reasons == []
    for balance in (0, None, -5000):
        assert (await feed.decide(rs, withdrawal(NOW, 1000, balance=balance, device="dev-new"))).reasons == []


async def test_new_device_needs_a_user():
    d = await Feed().decide(rule_set(NEW_DEVICE), withdrawal(NOW, 1000, balance=100_000, user=None, device="dev-new"))
    assert d.reasons == []


# --- night --------------------------------------------------------------------------------------------------

NIGHT = rule("night", key="account", from_hour=0, to_hour=5)


def china(hour: int, minute: int = 0, day: int = 12) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=CHINA_TZ).astimezone(UTC)


async def test_night_first_use_fires_only_at_night():
    d = await Feed().decide(rule_set(NIGHT), debit(china(2), account=7))
    assert d.decision == "review"
    assert d.reasons[0]["key"] == "account" and d.reasons[0]["hour"] == 2
    assert (await Feed().decide(rule_set(NIGHT), debit(china(10), account=7))).reasons == []


async def test_night_a_key_seen_before_is_not_a_first_use():
    # a use is one of the rule's subjects (a debit here), counted or not; a top-up is not a use
    feed = Feed().add(top_up(china(15, day=10), account=7), counted=True)
    assert fired(await feed.decide(rule_set(NIGHT), debit(china(2), account=7))) == ["night-rule"]
    feed = Feed().add(debit(china(15, day=10), account=7), counted=False)
    assert (await feed.decide(rule_set(NIGHT), debit(china(2), account=7))).reasons == []
    assert fired(await feed.decide(rule_set(NIGHT), debit(china(2), account=8))) == ["night-rule"]


async def test_night_from_after_to_spans_midnight():
    rs = rule_set(NIGHT | {"from_hour": 23, "to_hour": 5})
    assert fired(await Feed().decide(rs, debit(china(23, 30)))) == ["night-rule"]
    assert fired(await Feed().decide(rs, debit(china(4, 59)))) == ["night-rule"]
    assert (await Feed().decide(rs, debit(china(5)))).reasons == []
    assert (await Feed().decide(rs, debit(china(22, 59)))).reasons == []


@pytest.mark.parametrize(("hour", "late", "early"), [(22, False, False), (23, True, False), (0, True, True),
                                                      (4, True, True), (5, False, False), (12, False, False)])
def test_in_hours_edges(hour, late, early):
    at = china(hour, 30)
    assert in_hours(at, 23, 5) is late  # spans midnight
    assert in_hours(at, 0, 5) is early
    assert in_hours(china(hour), 23, 5) is late  # on the hour too


def test_in_hours_reads_china_time():
    assert in_hours(datetime(2025, 3, 11, 18, 0, tzinfo=UTC), 0, 5)  # 02:00 the next day in China
    assert not in_hours(datetime(2025, 3, 12, 2, 0, tzinfo=UTC), 0, 5)  # 10:00 in China


# --- how the rules combine ----------------------------------------------------------------------------------

AMOUNT = rule("amount", max_amount_fen=500)


async def test_shadow_rules_are_recorded_not_enforced():
    rs = rule_set(AMOUNT | {"status": "shadow", "action": "block"})
    d = await Feed().decide(rs, debit(NOW, 1000))
    assert d.decision == "allow"
    assert d.reasons == [{"rule": "amount-rule", "type": "amount", "action": "block", "shadow": True,
                          "amount_fen": 1000, "max_amount_fen": 500}]
    assert d.refusal is None


async def test_the_allow_list_wins():
    rs = rule_set(rule("list", id="listed", action="block", lists=["plate", "merchant"]), AMOUNT | {"action": "block"})
    blocked = await Feed().decide(rs, debit(NOW, 1000), {"plate": "block"})
    assert blocked.decision == "block" and fired(blocked) == ["listed", "amount-rule"]
    assert blocked.reasons[0]["lists"] == ["plate"]
    allowed = await Feed().decide(rs, debit(NOW, 1000), {"plate": "block", "merchant": "allow"})
    assert allowed.decision == "allow"
    assert allowed.reasons == [{"rule": "allow-list", "type": "list", "action": "allow", "shadow": False,
                                "lists": ["merchant"]}]


async def test_the_strongest_action_wins():
    rs = rule_set(AMOUNT | {"id": "over-5", "action": "review"},
                  AMOUNT | {"id": "over-8", "action": "block", "max_amount_fen": 800},
                  AMOUNT | {"id": "over-20", "action": "review", "max_amount_fen": 2000})
    both = await Feed().decide(rs, debit(NOW, 1000))
    assert both.decision == "block" and fired(both) == ["over-5", "over-8"]
    assert (await Feed().decide(rs, debit(NOW, 600))).decision == "review"
    assert (await Feed().decide(rs, debit(NOW, 500))).decision == "allow"


async def test_the_strongest_action_wins_in_whatever_order_the_rules_fire():
    block = AMOUNT | {"id": "block-over-5", "action": "block"}
    review = AMOUNT | {"id": "review-over-5", "action": "review"}
    for rs in (rule_set(block, review), rule_set(review, block)):
        both = await Feed().decide(rs, debit(NOW, 1000))
        assert both.decision == "block" and sorted(fired(both)) == ["block-over-5", "review-over-5"]
        assert both.refusal is not None and both.refusal.code == "RISK_BLOCKED"


async def test_a_rule_for_other_subjects_is_ignored():
    rs = rule_set(AMOUNT | {"applies_to": ["top_up", "withdrawal"], "max_amount_fen": 0})
    d = await Feed().decide(rs, debit(NOW, 1000))
    assert d.decision == "allow" and d.reasons == [] and d.version == 3
    assert (await Feed().decide(rs, top_up(NOW, 1000))).decision == "review"


async def test_an_amount_rule_for_categories():
    rs = rule_set(AMOUNT | {"categories": ["toll"]})
    assert (await Feed().decide(rs, debit(NOW, 1000, category="toll"))).decision == "review"
    assert (await Feed().decide(rs, debit(NOW, 1000, category="fuel"))).decision == "allow"


# --- the schema ---------------------------------------------------------------------------------------------

def text(*rule_list: dict) -> str:
    return json.dumps({"version": 1, "rules": list(rule_list)})


def test_the_baseline_parses():
    rs = rules.parse((ROOT / "risk" / "baseline.json").read_text())
    assert rs.version == 1 and len({r.id for r in rs.rules}) == len(rs.rules)


def test_travel_speed_must_be_a_number():
    good = rule("travel", max_speed_kmh=300)
    assert rules.parse(text(good)).rules[0].max_speed_kmh == 300
    with pytest.raises(RuleSetInvalid):
        rules.parse(text(good | {"max_speed_kmh": "300"}))


def test_an_unknown_key_is_refused():
    with pytest.raises(RuleSetInvalid):
        rules.parse(text(rule("velocity", key="phone", window="1h", max_count=5)))
    with pytest.raises(RuleSetInvalid):
        rules.parse(text(rule("travel", key="device", max_speed_kmh=300)))  # a device does not travel
    with pytest.raises(RuleSetInvalid):  # nor is an unknown field
        rules.parse(text(rule("velocity", key="plate", window="1h", max_count=5, per="plate")))


def test_a_night_rule_needs_some_hours():
    with pytest.raises(RuleSetInvalid):
        rules.parse(text(NIGHT | {"from_hour": 3, "to_hour": 3}))


def test_min_balance_share_is_a_share():
    assert rules.parse(text(DRAIN | {"min_balance_share": 1.0})).rules[0].min_balance_share == 1.0
    for share in (1.5, 0, -0.1):
        with pytest.raises(RuleSetInvalid):
            rules.parse(text(DRAIN | {"min_balance_share": share}))


def test_other_refusals():
    with pytest.raises(RuleSetInvalid):  # a velocity rule with no limit
        rules.parse(text(rule("velocity", key="plate", window="1h")))
    with pytest.raises(RuleSetInvalid):  # an unknown window
        rules.parse(text(rule("velocity", key="plate", window="2h", max_count=1)))
    with pytest.raises(RuleSetInvalid):  # two rules, one id
        rules.parse(text(AMOUNT, AMOUNT))
    with pytest.raises(RuleSetInvalid):  # not JSON
        rules.parse("{")
