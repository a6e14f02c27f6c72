"""GB/T 2260 county-level codes used by the synthetic population.

Residence is in Chengdu (成都市, 四川省); ID-number address codes also come from a few other
counties for migrants (流动人口). Codes are current GB/T 2260 county codes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name: str
    postal_code: str
    streets: tuple[str, ...]


PROVINCE = "四川省"
CITY = "成都市"
CITY_CODE = "510100"

CHENGDU_DISTRICTS: tuple[District, ...] = (
    District("510104", "锦江区", "610021", ("春熙路", "书院街", "东大街", "牛市口路")),
    District("510105", "青羊区", "610031", ("少城路", "草市街", "长顺上街", "清江东路")),
    District("510106", "金牛区", "610036", ("抚琴西路", "茶店子路", "营门口路", "蜀汉路")),
    District("510107", "武侯区", "610041", ("玉林北路", "浆洗街", "科华北路", "红牌楼路")),
    District("510108", "成华区", "610051", ("建设路", "猛追湾街", "二仙桥东路", "府青路")),
    District("510112", "龙泉驿区", "610100", ("驿都大道", "龙泉街", "十陵上街")),
    District("510116", "双流区", "610200", ("棠湖中路", "东升街", "白衣上街")),
    District("510117", "郫都区", "611730", ("望丛中路", "郫筒街", "犀浦镇国宁西路")),
    District("510115", "温江区", "611130", ("光华大道", "柳城大道", "凤溪大道")),
    District("510114", "新都区", "610500", ("桂湖中路", "新都大道", "马超东路")),
)
DISTRICT_BY_CODE = {d.code: d for d in CHENGDU_DISTRICTS}

# Residence weights (central districts denser).
DISTRICT_WEIGHTS: tuple[float, ...] = (12, 12, 14, 14, 12, 8, 10, 6, 6, 6)

# ID-number address codes of migrants (other counties; names for documentation only).
MIGRANT_AREAS: tuple[tuple[str, str], ...] = (
    ("511002", "四川省内江市市中区"),
    ("511302", "四川省南充市顺庆区"),
    ("510703", "四川省绵阳市涪城区"),
    ("500112", "重庆市渝北区"),
    ("420106", "湖北省武汉市武昌区"),
    ("610113", "陕西省西安市雁塔区"),
    ("530102", "云南省昆明市五华区"),
    ("430104", "湖南省长沙市岳麓区"),
    ("520102", "贵州省贵阳市南明区"),
)

# GB 3304 ethnicity codes with shares in the synthetic population.
ETHNICITIES: tuple[tuple[str, str, float], ...] = (
    ("01", "汉族", 94.0),
    ("07", "彝族", 2.0),
    ("04", "藏族", 1.8),
    ("03", "回族", 1.0),
    ("15", "土家族", 0.7),
    ("06", "苗族", 0.5),
)
