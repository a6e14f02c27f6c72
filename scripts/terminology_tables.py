"""Code tables of the platform (DOMAIN.md §2, §3.3, §6, §8, §B), as data for build_terminology.py.

Each concept row is ``(code, 中文 display, English designation or None)``; hierarchies and
properties are given separately. Sources follow DOMAIN.md's tags: [S] seen in public material,
[M] general knowledge to confirm. Codes the seed data uses are always present.
"""

from __future__ import annotations

Row = tuple[str, str, str | None]

GBT_2261_1_SEX: list[Row] = [
    ("0", "未知的性别", "Unknown"),
    ("1", "男性", "Male"),
    ("2", "女性", "Female"),
    ("9", "未说明的性别", "Not stated"),
]

GBT_2261_2_MARITAL: list[Row] = [
    ("10", "未婚", "Unmarried"),
    ("20", "已婚", "Married"),
    ("21", "初婚", "First marriage"),
    ("22", "再婚", "Remarried"),
    ("23", "复婚", "Remarried to former spouse"),
    ("30", "丧偶", "Widowed"),
    ("40", "离婚", "Divorced"),
    ("90", "未说明的婚姻状况", "Not stated"),
]
#: 21/22/23 are kinds of 20 已婚
GBT_2261_2_PARENTS = {"21": "20", "22": "20", "23": "20"}

# GB 3304-1991 民族名称的罗马字母拼写和代码: numeric code, name, romanisation of the standard
GB_3304_ETHNICITY: list[Row] = [
    ("01", "汉族", "Han"), ("02", "蒙古族", "Mongol"), ("03", "回族", "Hui"),
    ("04", "藏族", "Zang"), ("05", "维吾尔族", "Uygur"), ("06", "苗族", "Miao"),
    ("07", "彝族", "Yi"), ("08", "壮族", "Zhuang"), ("09", "布依族", "Buyei"),
    ("10", "朝鲜族", "Chosen"), ("11", "满族", "Man"), ("12", "侗族", "Dong"),
    ("13", "瑶族", "Yao"), ("14", "白族", "Bai"), ("15", "土家族", "Tujia"),
    ("16", "哈尼族", "Hani"), ("17", "哈萨克族", "Kazak"), ("18", "傣族", "Dai"),
    ("19", "黎族", "Li"), ("20", "傈僳族", "Lisu"), ("21", "佤族", "Va"),
    ("22", "畲族", "She"), ("23", "高山族", "Gaoshan"), ("24", "拉祜族", "Lahu"),
    ("25", "水族", "Sui"), ("26", "东乡族", "Dongxiang"), ("27", "纳西族", "Naxi"),
    ("28", "景颇族", "Jingpo"), ("29", "柯尔克孜族", "Kirgiz"), ("30", "土族", "Tu"),
    ("31", "达斡尔族", "Daur"), ("32", "仫佬族", "Mulao"), ("33", "羌族", "Qiang"),
    ("34", "布朗族", "Blang"), ("35", "撒拉族", "Salar"), ("36", "毛南族", "Maonan"),
    ("37", "仡佬族", "Gelao"), ("38", "锡伯族", "Xibe"), ("39", "阿昌族", "Achang"),
    ("40", "普米族", "Pumi"), ("41", "塔吉克族", "Tajik"), ("42", "怒族", "Nu"),
    ("43", "乌孜别克族", "Uzbek"), ("44", "俄罗斯族", "Russ"), ("45", "鄂温克族", "Ewenki"),
    ("46", "德昂族", "Deang"), ("47", "保安族", "Bonan"), ("48", "裕固族", "Yugur"),
    ("49", "京族", "Gin"), ("50", "塔塔尔族", "Tatar"), ("51", "独龙族", "Derung"),
    ("52", "鄂伦春族", "Oroqen"), ("53", "赫哲族", "Hezhen"), ("54", "门巴族", "Monba"),
    ("55", "珞巴族", "Lhoba"), ("56", "基诺族", "Jino"),
    ("97", "其他", "Other"), ("98", "外国血统中国籍人士", "Naturalised citizen of foreign origin"),
]

# GB/T 2659 (= ISO 3166-1 numeric): code, 中文简称, English short name; alpha-2/alpha-3 below.
GBT_2659_NATIONALITY: list[tuple[str, str, str, str, str]] = [
    ("156", "中国", "China", "CN", "CHN"),
    ("344", "中国香港", "Hong Kong, China", "HK", "HKG"),
    ("446", "中国澳门", "Macao, China", "MO", "MAC"),
    ("158", "中国台湾", "Taiwan, China", "TW", "TWN"),
    ("840", "美国", "United States", "US", "USA"),
    ("826", "英国", "United Kingdom", "GB", "GBR"),
    ("250", "法国", "France", "FR", "FRA"),
    ("276", "德国", "Germany", "DE", "DEU"),
    ("380", "意大利", "Italy", "IT", "ITA"),
    ("724", "西班牙", "Spain", "ES", "ESP"),
    ("528", "荷兰", "Netherlands", "NL", "NLD"),
    ("756", "瑞士", "Switzerland", "CH", "CHE"),
    ("752", "瑞典", "Sweden", "SE", "SWE"),
    ("643", "俄罗斯", "Russian Federation", "RU", "RUS"),
    ("392", "日本", "Japan", "JP", "JPN"),
    ("410", "韩国", "Republic of Korea", "KR", "KOR"),
    ("408", "朝鲜", "Democratic People's Republic of Korea", "KP", "PRK"),
    ("496", "蒙古", "Mongolia", "MN", "MNG"),
    ("398", "哈萨克斯坦", "Kazakhstan", "KZ", "KAZ"),
    ("702", "新加坡", "Singapore", "SG", "SGP"),
    ("458", "马来西亚", "Malaysia", "MY", "MYS"),
    ("764", "泰国", "Thailand", "TH", "THA"),
    ("704", "越南", "Viet Nam", "VN", "VNM"),
    ("104", "缅甸", "Myanmar", "MM", "MMR"),
    ("418", "老挝", "Lao People's Democratic Republic", "LA", "LAO"),
    ("116", "柬埔寨", "Cambodia", "KH", "KHM"),
    ("360", "印度尼西亚", "Indonesia", "ID", "IDN"),
    ("608", "菲律宾", "Philippines", "PH", "PHL"),
    ("356", "印度", "India", "IN", "IND"),
    ("586", "巴基斯坦", "Pakistan", "PK", "PAK"),
    ("524", "尼泊尔", "Nepal", "NP", "NPL"),
    ("050", "孟加拉国", "Bangladesh", "BD", "BGD"),
    ("124", "加拿大", "Canada", "CA", "CAN"),
    ("036", "澳大利亚", "Australia", "AU", "AUS"),
    ("554", "新西兰", "New Zealand", "NZ", "NZL"),
    ("076", "巴西", "Brazil", "BR", "BRA"),
    ("484", "墨西哥", "Mexico", "MX", "MEX"),
    ("710", "南非", "South Africa", "ZA", "ZAF"),
    ("818", "埃及", "Egypt", "EG", "EGY"),
    ("566", "尼日利亚", "Nigeria", "NG", "NGA"),
]

CV02_01_101_ID_DOC: list[Row] = [
    ("01", "居民身份证", "Resident identity card"),
    ("02", "居民户口簿", "Household register booklet"),
    ("03", "护照", "Passport"),
    ("04", "军官证", "Military officer's card"),
    ("05", "驾驶证", "Driving licence"),
    ("06", "港澳居民来往内地通行证", "Mainland travel permit for Hong Kong and Macao residents"),
    ("07", "台湾居民来往内地通行证", "Mainland travel permit for Taiwan residents"),
    ("99", "其他法定有效证件", "Other legal identity document"),
]

# GB/T 4761 家庭关系代码: only the codes the platform uses (content fragment) [M] except 51/52 [S]
GBT_4761_RELATIONSHIP: list[Row] = [
    ("10", "配偶", "Spouse"),
    ("20", "子", "Son"),
    ("30", "女", "Daughter"),
    ("50", "父母", "Parent"),
    ("51", "父亲", "Father"),
    ("52", "母亲", "Mother"),
    ("60", "祖父母或外祖父母", "Grandparent"),
    ("70", "兄、弟、姐、妹", "Sibling"),
    ("80", "其他", "Other relative"),
]
GBT_4761_PARENTS = {"51": "50", "52": "50"}

ABO: list[Row] = [("1", "A型", "Type A"), ("2", "B型", "Type B"), ("3", "O型", "Type O"),
                  ("4", "AB型", "Type AB"), ("5", "不详", "Unknown")]
RH: list[Row] = [("1", "阴性", "Rh(D) negative"), ("2", "阳性", "Rh(D) positive"),
                 ("3", "不详", "Unknown")]

WST_500_DOC_TYPE: list[Row] = [
    ("C0001", "病历概要", "Medical record summary"),
    ("C0015", "阴道分娩记录", "Vaginal delivery record"),
    ("C0032", "住院病案首页", "Inpatient medical record front page"),
    ("C0042", "转科记录", "Transfer-of-department record"),
    ("C0049", "出院记录", "Discharge record"),
]

# GB/T 2260: (code, name, parent or None, status) — every province; the prefectures and counties
# the seed data and the DOMAIN.md examples use; retired codes kept (ID numbers carry them).
PROVINCES: list[tuple[str, str]] = [
    ("110000", "北京市"), ("120000", "天津市"), ("130000", "河北省"), ("140000", "山西省"),
    ("150000", "内蒙古自治区"), ("210000", "辽宁省"), ("220000", "吉林省"),
    ("230000", "黑龙江省"), ("310000", "上海市"), ("320000", "江苏省"), ("330000", "浙江省"),
    ("340000", "安徽省"), ("350000", "福建省"), ("360000", "江西省"), ("370000", "山东省"),
    ("410000", "河南省"), ("420000", "湖北省"), ("430000", "湖南省"), ("440000", "广东省"),
    ("450000", "广西壮族自治区"), ("460000", "海南省"), ("500000", "重庆市"),
    ("510000", "四川省"), ("520000", "贵州省"), ("530000", "云南省"), ("540000", "西藏自治区"),
    ("610000", "陕西省"), ("620000", "甘肃省"), ("630000", "青海省"),
    ("640000", "宁夏回族自治区"), ("650000", "新疆维吾尔自治区"), ("710000", "台湾省"),
    ("810000", "香港特别行政区"), ("820000", "澳门特别行政区"),
]
PROVINCE_EN = {
    "110000": "Beijing", "120000": "Tianjin", "130000": "Hebei", "140000": "Shanxi",
    "150000": "Inner Mongolia", "210000": "Liaoning", "220000": "Jilin", "230000": "Heilongjiang",
    "310000": "Shanghai", "320000": "Jiangsu", "330000": "Zhejiang", "340000": "Anhui",
    "350000": "Fujian", "360000": "Jiangxi", "370000": "Shandong", "410000": "Henan",
    "420000": "Hubei", "430000": "Hunan", "440000": "Guangdong", "450000": "Guangxi",
    "460000": "Hainan", "500000": "Chongqing", "510000": "Sichuan", "520000": "Guizhou",
    "530000": "Yunnan", "540000": "Xizang", "610000": "Shaanxi", "620000": "Gansu",
    "630000": "Qinghai", "640000": "Ningxia", "650000": "Xinjiang", "710000": "Taiwan",
    "810000": "Hong Kong", "820000": "Macao",
}
PREFECTURES: list[tuple[str, str]] = [
    ("110100", "市辖区"), ("310100", "市辖区"), ("500100", "市辖区"),
    ("420100", "武汉市"), ("430100", "长沙市"), ("510100", "成都市"), ("510700", "绵阳市"),
    ("511000", "内江市"), ("511300", "南充市"), ("520100", "贵阳市"), ("530100", "昆明市"),
    ("610100", "西安市"),
]
# (code, name, status, replaced by)
COUNTIES: list[tuple[str, str, str, str | None]] = [
    ("110101", "东城区", "active", None), ("110102", "西城区", "active", None),
    ("110103", "崇文区", "retired", "110101"), ("110104", "宣武区", "retired", "110102"),
    ("110108", "海淀区", "active", None),
    ("310115", "浦东新区", "active", None),
    ("420106", "武昌区", "active", None),
    ("430104", "岳麓区", "active", None),
    ("500112", "渝北区", "active", None),
    ("510104", "锦江区", "active", None), ("510105", "青羊区", "active", None),
    ("510106", "金牛区", "active", None), ("510107", "武侯区", "active", None),
    ("510108", "成华区", "active", None), ("510112", "龙泉驿区", "active", None),
    ("510114", "新都区", "active", None), ("510115", "温江区", "active", None),
    ("510116", "双流区", "active", None), ("510117", "郫都区", "active", None),
    ("510122", "双流县", "retired", "510116"), ("510124", "郫县", "retired", "510117"),
    ("510703", "涪城区", "active", None),
    ("511002", "市中区", "active", None),
    ("511302", "顺庆区", "active", None),
    ("520102", "南明区", "active", None),
    ("530102", "五华区", "active", None),
    ("610113", "雁塔区", "active", None),
]
# 9-digit township/street codes (local supplement, DOMAIN.md §2)
TOWNSHIPS: list[tuple[str, str]] = [("500112005", "龙山街道")]

EHC_CARD_ATTR: list[Row] = [("1", "临时卡(电子就诊卡)", "Temporary card (electronic visit card)"),
                            ("2", "正式卡", "Regular card (electronic health card)")]
EHC_CARD_STATUS: list[Row] = [("1", "正常", "Active"), ("2", "暂停", "Suspended"),
                              ("3", "注销", "Cancelled"), ("4", "挂失", "Reported lost"),
                              ("5", "冻结", "Frozen")]
EHC_QR_KIND: list[Row] = [("static", "静态码", "Static QR code"),
                          ("dynamic", "动态码", "Dynamic QR code (with encrypted expiry)"),
                          ("temporary", "临时卡码", "Temporary-card QR code")]
#: the QR type digit seen in public samples for each kind (DOMAIN.md §1.2: mapping not confirmed)
EHC_QR_DIGIT = {"static": "1", "dynamic": "0", "temporary": "9"}
EHC_IDENTIFIER_TYPE: list[Row] = [
    ("EHC", "电子健康卡", "Electronic health card ID"),
    ("MINDEX", "主索引ID", "Health card master index ID"),
    ("RHC", "居民健康卡", "Resident health card number"),
    ("SSCARD", "社会保障卡", "Social security card number"),
    ("NHSA-PSN", "医保人员编号", "NHSA person number"),
]
VISIT_CREDENTIAL: list[Row] = [
    ("EHC-QR", "电子健康卡二维码", "Electronic health card QR code"),
    ("RHC", "居民健康卡", "Resident health card"),
    ("SSC", "社会保障卡", "Social security card"),
    ("CIN", "居民身份证", "Resident identity card"),
    ("REG", "区域就诊卡", "Regional visit card"),
    ("HOSP", "院内就诊卡", "Hospital visit card"),
    ("NHSA-EC", "医保电子凭证", "NHSA electronic medical insurance credential"),
]
NHSA_INSUTYPE: list[Row] = [
    ("310", "职工基本医疗保险", "Employee basic medical insurance"),
    ("320", "公务员医疗补助", "Civil servant medical subsidy"),
    ("330", "大额医疗费用补助", "Large medical expense subsidy"),
    ("340", "离休人员医疗保障", "Retired cadre medical security"),
    ("390", "城乡居民基本医疗保险", "Urban and rural resident basic medical insurance"),
    ("392", "城乡居民大病医疗保险", "Urban and rural resident critical illness insurance"),
    ("510", "生育保险", "Maternity insurance"),
]
# 11/14/21 [S]; the others [M] from the NHSA 医疗类别 dictionary
NHSA_MED_TYPE: list[Row] = [
    ("11", "普通门诊", "General outpatient"),
    ("12", "门诊挂号", "Outpatient registration"),
    ("13", "急诊", "Emergency"),
    ("14", "门诊慢特病", "Outpatient chronic and special diseases"),
    ("21", "普通住院", "General inpatient"),
    ("22", "外伤住院", "Inpatient for trauma"),
    ("23", "转外诊治住院", "Inpatient after referral out of area"),
    ("41", "定点药店购药", "Purchase at a designated pharmacy"),
    ("51", "生育门诊", "Maternity outpatient"),
    ("52", "生育住院", "Maternity inpatient"),
]
NHSA_MDTRT_CERT_TYPE: list[Row] = [
    ("01", "医保电子凭证令牌", "NHSA electronic credential token"),
    ("02", "居民身份证号", "Resident identity number"),
    ("03", "社会保障卡卡号", "Social security card number"),
]
NHSA_REFD_SETL_FLAG: list[Row] = [("0", "否", "Not a refund"), ("1", "是", "Refund settlement")]
NHSA_STMT_RSLT: list[Row] = [("1", "平", "Balanced"), ("2", "不平", "Not balanced"),
                             ("9", "失败", "Failed")]
#: visit-credential -> nhsa-mdtrt-cert-type
VISIT_CREDENTIAL_TO_NHSA = {"NHSA-EC": "01", "CIN": "02", "SSC": "03"}

# (code, display, English, nip, CVX, CVX equivalence, SNOMED CT, SNOMED equivalence, route)
VACCINES: list[tuple[str, str, str, bool, str | None, str, str | None, str, str | None]] = [
    ("HepB", "乙肝疫苗", "Hepatitis B vaccine", True, "08", "equivalent", "836374004", "equivalent", "IM"),
    ("BCG", "卡介苗", "BCG vaccine", True, "19", "equivalent", "836402002", "equivalent", "IDINJ"),
    ("IPV", "脊灰灭活疫苗", "Inactivated poliovirus vaccine", True, "10", "equivalent", "871740006",
     "equivalent", "IM"),
    ("bOPV", "二价脊灰减毒活疫苗", "Bivalent oral poliovirus vaccine (types 1 and 3)", True, "178",
     "equivalent", None, "", "PO"),
    ("DTaP", "百白破疫苗", "DTaP vaccine", True, "20", "equivalent", "871876003", "equivalent", "IM"),
    ("DT", "白破疫苗", "DT vaccine", True, "28", "equivalent", "871826000", "equivalent", "IM"),
    ("MMR", "麻腮风疫苗", "Measles, mumps and rubella vaccine", True, "03", "equivalent", "871831003",
     "equivalent", "SQ"),
    ("JE-L", "乙脑减毒活疫苗", "Japanese encephalitis vaccine, live attenuated", True, "129", "wider",
     "836378001", "wider", "SQ"),
    ("JE-I", "乙脑灭活疫苗", "Japanese encephalitis vaccine, inactivated", True, "129", "wider",
     "836378001", "wider", "IM"),
    ("MPSV-A", "A群流脑多糖疫苗", "Group A meningococcal polysaccharide vaccine", True, "108", "wider",
     None, "", "SQ"),
    ("MPSV-AC", "A群C群流脑多糖疫苗", "Group A and C meningococcal polysaccharide vaccine", True, "108",
     "wider", "871871008", "equivalent", "SQ"),
    ("HepA-L", "甲肝减毒活疫苗", "Hepatitis A vaccine, live attenuated", True, "85", "wider",
     "836375003", "wider", "SQ"),
    ("HepA-I", "甲肝灭活疫苗", "Hepatitis A vaccine, inactivated", True, "85", "wider", "836375003",
     "wider", "IM"),
    # non-NIP products (非免疫规划疫苗); CVX [M]
    ("PCV13", "13价肺炎球菌多糖结合疫苗", "Pneumococcal conjugate vaccine, 13-valent", False, "133",
     "equivalent", None, "", "IM"),
    ("PPV23", "23价肺炎球菌多糖疫苗", "Pneumococcal polysaccharide vaccine, 23-valent", False, "33",
     "equivalent", None, "", "IM"),
    ("EV71", "肠道病毒71型灭活疫苗", "Enterovirus 71 vaccine, inactivated", False, None, "", None, "",
     "IM"),
    ("RV", "轮状病毒疫苗", "Rotavirus vaccine", False, "122", "wider", None, "", "PO"),
    ("DTaP-IPV/Hib", "吸附无细胞百白破灭活脊灰和b型流感嗜血杆菌联合疫苗", "DTaP-IPV/Hib vaccine", False,
     "120", "equivalent", None, "", "IM"),
    ("Hib", "b型流感嗜血杆菌结合疫苗", "Haemophilus influenzae type b conjugate vaccine", False, "17",
     "wider", None, "", "IM"),
    ("VAR", "水痘减毒活疫苗", "Varicella vaccine, live attenuated", False, "21", "equivalent", None, "",
     "SQ"),
    ("Flu", "流感疫苗", "Influenza vaccine", False, "88", "wider", None, "", "IM"),
    ("HPV", "人乳头瘤病毒疫苗", "Human papillomavirus vaccine", False, "137", "wider", None, "", "IM"),
    ("RAB", "人用狂犬病疫苗", "Rabies vaccine for human use", False, "90", "wider", None, "", "IM"),
]
# target diseases (SNOMED CT disorders, as in seed/schedule.py)
VACCINE_DISEASES: dict[str, tuple[str, ...]] = {
    "HepB": ("66071002",), "BCG": ("56717001",), "IPV": ("398102009",), "bOPV": ("398102009",),
    "DTaP": ("397430003", "76902006", "27836007"), "DT": ("397430003", "76902006"),
    "MMR": ("14189004", "36989005", "36653000"), "JE-L": ("52947006",), "JE-I": ("52947006",),
    "MPSV-A": ("23511006",), "MPSV-AC": ("23511006",), "HepA-L": ("40468003",),
    "HepA-I": ("40468003",),
}

FUNDING_SOURCE: list[Row] = [("nip", "免疫规划疫苗", "National immunisation programme vaccine"),
                             ("non-nip", "非免疫规划疫苗", "Non-programme vaccine")]
IMMUNIZATION_ACTIVITY: list[Row] = [
    ("routine", "常规接种", "Routine immunisation"),
    ("catch-up", "补种", "Catch-up immunisation"),
    ("sia", "强化免疫", "Supplementary immunisation activity"),
    ("mass", "群体性预防接种", "Mass vaccination"),
    ("emergency", "应急接种", "Emergency vaccination"),
]
IMMUNIZATION_NOT_DONE_REASON: list[Row] = [
    ("contraindication", "禁忌", "Contraindication"),
    ("refused", "拒种", "Refused"),
    ("deferred", "暂缓", "Deferred"),
]
# (code, display, English, SNOMED CT body structure, v3-ActSite) [M] for the maps
VACCINATION_SITE: list[tuple[str, str, str, str, str | None]] = [
    ("1", "左上臂", "Left upper arm", "368208006", "LUA"),
    ("2", "右上臂", "Right upper arm", "368209003", "RUA"),
    ("3", "左大腿", "Left thigh", "61396006", "LT"),
    ("4", "右大腿", "Right thigh", "11207009", "RT"),
    ("5", "左臀部", "Left buttock", "723979003", "LG"),
    ("6", "右臀部", "Right buttock", "723980000", "RG"),
    ("7", "口服", "Oral", "74262004", None),
]
REFERRAL_DIRECTION: list[Row] = [("up", "上转", "Up-referral"), ("down", "下转", "Down-referral"),
                                 ("lateral", "平转", "Lateral referral")]
REFERRAL_TYPE: list[Row] = [("outpatient", "门诊转诊", "Outpatient referral"),
                            ("inpatient", "住院转诊", "Inpatient referral"),
                            ("exam", "检查转诊", "Examination referral"),
                            ("rehab", "康复转诊", "Rehabilitation referral")]
REFERRAL_BUSINESS_STATUS: list[Row] = [
    ("00", "暂存", "Draft"), ("01", "待审核", "Awaiting review"),
    ("02", "已审核待接诊", "Approved, awaiting acceptance"),
    ("03", "已接诊待就诊", "Accepted, awaiting the patient"), ("04", "已到诊", "Patient arrived"),
    ("05", "已拒绝", "Rejected"), ("06", "已取消", "Cancelled"),
    ("07", "已回转/结案", "Referred back / closed"),
]
# (code, display, English, parent)
MCH_VISIT_TYPE: list[tuple[str, str, str, str | None]] = [
    ("prenatal", "产前检查", "Prenatal check", None),
    ("prenatal-1", "第1次产前检查(孕13周前，建册)", "1st prenatal check (<13 weeks, registration)",
     "prenatal"),
    ("prenatal-2", "第2次产前检查(孕16~20周)", "2nd prenatal check (16-20 weeks)", "prenatal"),
    ("prenatal-3", "第3次产前检查(孕21~24周)", "3rd prenatal check (21-24 weeks)", "prenatal"),
    ("prenatal-4", "第4次产前检查(孕28~36周)", "4th prenatal check (28-36 weeks)", "prenatal"),
    ("prenatal-5", "第5次产前检查(孕37~40周)", "5th prenatal check (37-40 weeks)", "prenatal"),
    ("postpartum", "产后访视与检查", "Postpartum care", None),
    ("postpartum-visit", "产后访视(出院后7日内)", "Postpartum home visit (within 7 days)",
     "postpartum"),
    ("postpartum-42d", "产后42天健康检查", "42-day postpartum check", "postpartum"),
    ("child-health", "儿童健康管理", "Child health management", None),
    ("newborn-visit", "新生儿家庭访视", "Newborn home visit", "child-health"),
    ("child-check-1m", "满月健康检查", "1-month check", "child-health"),
    ("child-check-3m", "3月龄健康检查", "3-month check", "child-health"),
    ("child-check-6m", "6月龄健康检查", "6-month check", "child-health"),
    ("child-check-8m", "8月龄健康检查", "8-month check", "child-health"),
    ("child-check-12m", "12月龄健康检查", "12-month check", "child-health"),
    ("child-check-18m", "18月龄健康检查", "18-month check", "child-health"),
    ("child-check-24m", "24月龄健康检查", "24-month check", "child-health"),
    ("child-check-30m", "30月龄健康检查", "30-month check", "child-health"),
    ("child-check-36m", "36月龄健康检查", "36-month check", "child-health"),
    ("child-check-4y", "4岁健康检查", "4-year check", "child-health"),
    ("child-check-5y", "5岁健康检查", "5-year check", "child-health"),
    ("child-check-6y", "6岁健康检查", "6-year check", "child-health"),
]
PREGNANCY_RISK_COLOR: list[Row] = [
    ("green", "绿色(低风险)", "Green: low risk"),
    ("yellow", "黄色(一般风险)", "Yellow: general risk"),
    ("orange", "橙色(较高风险)", "Orange: higher risk"),
    ("red", "红色(高风险)", "Red: high risk"),
    ("purple", "紫色(传染性疾病)", "Purple: infectious disease"),
]
