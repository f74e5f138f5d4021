"""Test data for identity: valid resident ID numbers and bank-card numbers, made with real checksums."""

from __future__ import annotations

import random
from datetime import date

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"
REGIONS = ["110105", "310101", "110101"]  # codes python-stdnum knows


def id_check_char(first17: str) -> str:
    return CHECK[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def make_id_number(birth: date | None = None, *, region: str | None = None, male: bool | None = None) -> str:
    birth = birth or date(random.randint(1950, 2000), random.randint(1, 12), random.randint(1, 28))
    seq = random.randint(0, 99)
    gender = random.choice([0, 1]) if male is None else int(male)
    body = f"{region or random.choice(REGIONS)}{birth:%Y%m%d}{seq:02d}{gender + 2 * random.randint(0, 4)}"
    return body + id_check_char(body)


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def make_card_number(prefix: str = "622202", length: int = 19) -> str:
    from tests.logscan import record

    body = prefix + "".join(random.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return record(body + luhn_check_digit(body))


CHINESE_NAMES = ["张三", "李四光", "王小明", "赵丽颖", "欧阳娜娜", "陈晓东"]
