"""Chinese name tables: common surnames with approximate frequency weights (%) and given-name
characters by sex and era. Synthetic data only."""

from __future__ import annotations

import random

# Approximate national shares (%), most common first.
SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.7), ("刘", 5.4), ("陈", 4.5),
    ("杨", 3.1), ("黄", 2.2), ("赵", 2.0), ("吴", 1.9), ("周", 1.9),
    ("徐", 1.5), ("孙", 1.4), ("马", 1.3), ("朱", 1.3), ("胡", 1.2),
    ("郭", 1.1), ("何", 1.1), ("林", 1.0), ("罗", 1.0), ("高", 1.0),
    ("郑", 0.8), ("梁", 0.8), ("谢", 0.7), ("宋", 0.7), ("唐", 0.7),
    ("许", 0.6), ("韩", 0.6), ("冯", 0.6), ("邓", 0.6), ("曹", 0.6),
    ("彭", 0.5), ("曾", 0.5), ("肖", 0.5), ("田", 0.5), ("董", 0.5),
    ("袁", 0.4), ("潘", 0.4), ("于", 0.4), ("蒋", 0.4), ("蔡", 0.4),
    ("余", 0.4), ("杜", 0.4), ("叶", 0.4), ("程", 0.3), ("苏", 0.3),
    ("魏", 0.3), ("吕", 0.3), ("丁", 0.3), ("任", 0.3), ("沈", 0.3),
)
_SURNAME_CHARS = tuple(s for s, _ in SURNAMES)
_SURNAME_WEIGHTS = tuple(w for _, w in SURNAMES)

GIVEN_MALE_OLD = "伟强磊军勇杰涛斌超明刚平辉鹏华飞波建国志文俊峰林兵德清长福"
GIVEN_FEMALE_OLD = "芳娜敏静丽艳娟霞秀英慧玲红梅兰凤琴云莉萍燕洁华桂珍"
GIVEN_MALE_NEW = "子轩浩宇然睿泽晨铭博宸皓一诺俊豪煜恒瑞梓航逸辰锦昊天"
GIVEN_FEMALE_NEW = "梓涵欣怡雨桐诗萱佳琪思妍可馨若汐悦彤语嫣一诺紫晴安"


def surname(rng: random.Random) -> str:
    return rng.choices(_SURNAME_CHARS, weights=_SURNAME_WEIGHTS, k=1)[0]


def given_name(rng: random.Random, sex: str, birth_year: int) -> str:
    """One or two characters; pools differ by sex and by era (born before/after 2000)."""
    if sex == "male":
        pool = GIVEN_MALE_NEW if birth_year >= 2000 else GIVEN_MALE_OLD
    else:
        pool = GIVEN_FEMALE_NEW if birth_year >= 2000 else GIVEN_FEMALE_OLD
    length = 1 if rng.random() < (0.15 if birth_year >= 2000 else 0.35) else 2
    return "".join(rng.choice(pool) for _ in range(length))


def full_name(rng: random.Random, sex: str, birth_year: int, family: str | None = None) -> tuple[
    str, str
]:
    """(family, given)."""
    return (family or surname(rng)), given_name(rng, sex, birth_year)
