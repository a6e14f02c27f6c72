"""The differentials of the platform's profiles and extensions (DOMAIN.md §C), read by
``scripts/build_profiles.py``, which adds the snapshots and writes ``profiles/*.json``.

Element ids follow R4 (``Patient.identifier:cin.value``); ``path`` is derived from the id. Every
invariant comes from ``fhir_server.profiles.catalog`` by key, so the validator's native checks and
the published FHIRPath stay one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_server.fhir import identifiers as ids
from fhir_server.profiles.catalog import local_rules

CORE = "http://hl7.org/fhir/StructureDefinition/"


@dataclass
class Source:
    name: str  # id and last URL segment
    title: str
    description: str
    type: str  # Patient, Extension ...
    elements: list[dict[str, Any]] = field(default_factory=list)
    context: list[str] = field(default_factory=list)  # extension contexts (element paths)


def path_of(eid: str) -> str:
    return ".".join(part.split(":")[0] for part in eid.split("."))


class Builder:
    """Differential elements for one canonical base."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.sids = ids.identifier_systems(self.base)
        self.cs = ids.code_systems(self.base)
        self.rules = local_rules(self.base)

    def url(self, name: str) -> str:
        return ids.structure_definition_url(self.base, name)

    def vs(self, name: str) -> str:
        return f"{self.base}/ValueSet/{name}"

    def constraint(self, key: str, source: str) -> dict[str, Any]:
        rule = self.rules[key]
        return {"key": key, "severity": rule.severity, "human": rule.human,
                "expression": rule.expression, "source": source}


def el(eid: str, **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": eid, "path": path_of(eid)}
    head = eid.rsplit(".", 1)[-1]
    if ":" in head:
        out["sliceName"] = head.split(":", 1)[1]
    out.update(props)
    return out


def binding(strength: str, value_set: str, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"strength": strength}
    if description:
        out["description"] = description
    out["valueSet"] = value_set
    return out


def ref(*targets: str) -> list[dict[str, Any]]:
    return [{"code": "Reference",
             "targetProfile": [t if "/" in t else CORE + t for t in targets]}]


def by_url() -> dict[str, Any]:
    return {"discriminator": [{"type": "value", "path": "url"}], "ordered": False,
            "rules": "open"}


def by_system() -> dict[str, Any]:
    return {"discriminator": [{"type": "value", "path": "system"}], "ordered": False,
            "rules": "open"}


def ext_slice(eid: str, url: str, lo: int, hi: str, short: str) -> dict[str, Any]:
    return el(eid, short=short, min=lo, max=hi,
              type=[{"code": "Extension", "profile": [url]}])


# ---------------------------------------------------------------------------------------------
# extensions


def _simple_ext(b: Builder, name: str, title: str, description: str, context: list[str],
                value_type: str, binding_: dict[str, Any] | None = None,
                constraints: tuple[str, ...] = ()) -> Source:
    url = b.url(name)
    root = el("Extension", short=title, definition=description)
    if constraints:
        root["constraint"] = [b.constraint(k, url) for k in constraints]
    value = el("Extension.value[x]", min=1, type=[{"code": value_type}])
    if binding_:
        value["binding"] = binding_
    return Source(name, title, description, "Extension", [
        root, el("Extension.extension", max="0"),
        el("Extension.url", fixedUri=url), value], context)


def _part(prefix: str, name: str, lo: int, hi: str, value_type: str, short: str,
          binding_: dict[str, Any] | None = None, constraint: dict[str, Any] | None = None
          ) -> list[dict[str, Any]]:
    s = f"{prefix}:{name}"
    head = el(s, short=short, min=lo, max=hi)
    if constraint:
        head["constraint"] = [constraint]
    value = el(f"{s}.value[x]", min=1, type=[{"code": value_type}])
    if binding_:
        value["binding"] = binding_
    return [head, el(f"{s}.extension", max="0"), el(f"{s}.url", fixedUri=name), value]


def _complex_ext(b: Builder, name: str, title: str, description: str, context: list[str],
                 parts: list[list[dict[str, Any]]], constraints: tuple[str, ...] = ()
                 ) -> Source:
    url = b.url(name)
    root = el("Extension", short=title, definition=description)
    if constraints:
        root["constraint"] = [b.constraint(k, url) for k in constraints]
    elements = [root, el("Extension.extension", slicing=by_url(), min=1)]
    for part in parts:
        elements.extend(part)
    elements += [el("Extension.url", fixedUri=url), el("Extension.value[x]", max="0")]
    return Source(name, title, description, "Extension", elements, context)


def extensions(b: Builder) -> list[Source]:
    x = "Extension.extension"
    visit_credential = b.url("visit-credential")
    settlement = b.url("nhsa-settlement")
    return [
        _simple_ext(b, "gbt2261-1-sex", "GB/T 2261.1 生理性别",
                    "The resident's sex coded in GB/T 2261.1 (0 未知, 1 男, 2 女, 9 未说明), beside "
                    "Patient.gender (AdministrativeGender, which R4 requires).", ["Patient"],
                    "Coding", binding("required", b.vs("gbt-2261-1-sex"))),
        _simple_ext(b, "ethnicity", "民族 (GB 3304)", "Ethnic group coded in GB 3304 (01 汉族 … 56 "
                    "基诺族, 97 其他, 98 外国血统中国籍人士).", ["Patient", "RelatedPerson"],
                    "Coding", binding("required", b.vs("gb-3304-ethnicity"))),
        _simple_ext(b, "nationality", "国籍 (GB/T 2659)", "Nationality coded in GB/T 2659 "
                    "(156 中国 …).", ["Patient", "RelatedPerson"], "Coding",
                    binding("extensible", b.vs("gbt-2659-nationality"))),
        _simple_ext(b, "admin-division", "行政区划 (GB/T 2260)", "The GB/T 2260 administrative "
                    "division of an address: a 6-digit county code, or a 9/12-digit local "
                    "township/village code.", ["Address"], "code",
                    binding("extensible", b.vs("gbt-2260")), ("admin-division-format",)),
        _simple_ext(b, "household-registration", "户籍地址", "True when the address is the "
                    "resident's household registration (户籍) address.", ["Address"], "boolean"),
        _simple_ext(b, "referral-direction", "转诊方向", "Direction of a two-way referral: up "
                    "上转, down 下转, lateral 平转.", ["ServiceRequest"], "code",
                    binding("required", b.vs("referral-direction"))),
        _simple_ext(b, "vaccine-trace-code", "疫苗追溯码", "The traceability code (疫苗追溯码) of the "
                    "dose administered.", ["Immunization"], "string",
                    constraints=("trace-code-format",)),
        _complex_ext(b, "visit-credential", "就诊凭证", "Which card or credential was presented at "
                     "the visit, and the scan event (a QR payload is a credential, never an "
                     "identifier).", ["Encounter"], [
                         _part(x, "medium", 1, "1", "Coding", "凭证介质",
                               binding("required", b.vs("visit-credential"))),
                         _part(x, "ehcId", 0, "1", "string", "电子健康卡ID (解析二维码所得)",
                               constraint=b.constraint("ehc-format", visit_credential)),
                         _part(x, "qrKind", 0, "1", "code", "二维码类型",
                               binding("required", b.vs("ehc-qr-kind"))),
                         _part(x, "scanTime", 0, "1", "dateTime", "用卡时间"),
                         _part(x, "terminalCode", 0, "1", "string", "终端编号"),
                         _part(x, "medStepCode", 0, "1", "string", "诊疗环节代码"),
                     ]),
        _complex_ext(b, "nhsa-visit", "医保就诊信息", "National Healthcare Security Administration "
                     "(医保) data of the visit.", ["Encounter"], [
                         _part(x, "insutype", 0, "1", "Coding", "险种类型",
                               binding("required", b.vs("nhsa-insutype"))),
                         _part(x, "medType", 0, "1", "Coding", "医疗类别",
                               binding("extensible", b.vs("nhsa-med-type"))),
                         _part(x, "mdtrtCertType", 0, "1", "Coding", "就诊凭证类型",
                               binding("required", b.vs("nhsa-mdtrt-cert-type"))),
                         _part(x, "insuplcAdmdvs", 0, "1", "code", "参保地医保区划",
                               constraint=b.constraint("admdvs-format", b.url("nhsa-visit"))),
                         _part(x, "mdtrtareaAdmvs", 0, "1", "code", "就医地医保区划",
                               constraint=b.constraint("admdvs-format", b.url("nhsa-visit"))),
                     ]),
        _complex_ext(b, "nhsa-settlement", "医保结算", "One NHSA settlement (or refund) of the "
                     "visit, keyed by setl_id; amounts in CNY with 2 decimals.", ["Encounter"], [
                         _part(x, "setlId", 1, "1", "string", "结算ID",
                               constraint=b.constraint("setl-length", settlement)),
                         _part(x, "setlTime", 0, "1", "dateTime", "结算时间"),
                         _part(x, "medfeeSumamt", 0, "1", "Money", "医疗费总额"),
                         _part(x, "fundPaySumamt", 0, "1", "Money", "基金支付总额"),
                         _part(x, "acctPay", 0, "1", "Money", "个人账户支出"),
                         _part(x, "cashPayamt", 0, "1", "Money", "现金支付金额"),
                         _part(x, "psnPay", 0, "1", "Money", "个人负担总金额"),
                         _part(x, "clrType", 0, "1", "string", "清算类别"),
                         _part(x, "setlOptins", 0, "1", "string", "结算经办机构"),
                         _part(x, "refdSetlFlag", 0, "1", "Coding", "退费结算标志",
                               binding("required", b.vs("nhsa-refd-setl-flag"))),
                         _part(x, "stmtResult", 0, "1", "Coding", "对账结果",
                               binding("required", b.vs("nhsa-stmt-rslt"))),
                     ], ("money-cny", "money-scale")),
    ]
