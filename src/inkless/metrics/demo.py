"""The demo catalogue: procedures of the demo ministry's offices, as a ministry would list them."""

from __future__ import annotations

from inkless.metrics.catalogue import ProcedureCatalogue
from inkless.metrics.model import ImportSummary, ProcedureFields, SealRequirement

MINISTRY = "法務省"
N, M, J, K = SealRequirement.NONE, SealRequirement.MITOME, SealRequirement.JITSUIN, SealRequirement.OFFICIAL

# code, name, office (None: node-wide), legal basis, seal on paper, fax or paper still allowed
DEMO_PROCEDURES: list[tuple[str, str, str | None, str, SealRequirement, bool]] = [
    ("MOJ-MIN-001", "登記事項証明書の交付請求", "civil-affairs", "不動産登記法第119条", N, True),
    ("MOJ-MIN-002", "所有権移転登記の申請", "civil-affairs", "不動産登記法第18条", J, True),
    ("MOJ-MIN-003", "商業登記の申請（役員変更）", "civil-affairs", "商業登記法第17条", J, True),
    ("MOJ-MIN-004", "印鑑証明書の交付請求", "civil-affairs", "商業登記法第12条", J, True),
    ("MOJ-MIN-005", "戸籍謄本等の交付請求", "civil-affairs", "戸籍法第10条", N, True),
    ("MOJ-MIN-006", "供託申請", "civil-affairs", "供託規則第13条", M, True),
    ("MOJ-MIN-007", "供託金の払渡請求", "civil-affairs", "供託規則第22条", J, True),
    ("MOJ-MIN-008", "債権譲渡登記の申請", "civil-affairs", "動産・債権譲渡特例法第8条", J, False),
    ("MOJ-MIN-009", "成年後見登記事項証明書の交付申請", "civil-affairs", "後見登記等に関する法律第10条", M, True),
    ("MOJ-MIN-010", "筆界特定の申請", "civil-affairs", "不動産登記法第131条", M, True),
    ("MOJ-MIN-011", "法定相続情報一覧図の写しの交付申出", "civil-affairs", "不動産登記規則第247条", N, False),
    ("MOJ-MIN-012", "自筆証書遺言書の保管申請", "civil-affairs",
     "法務局における遺言書の保管等に関する法律第4条", N, False),
    ("MOJ-MIN-013", "帰化許可申請", "civil-affairs", "国籍法第4条", J, True),
    ("MOJ-MIN-014", "国籍取得届", "civil-affairs", "国籍法第3条", M, True),
    ("MOJ-MIN-015", "登記所備付地図の写しの交付請求", "civil-affairs", "不動産登記法第121条", N, True),
    ("MOJ-KEI-001", "捜査関係事項照会への回答", "criminal-affairs", "刑事訴訟法第197条第2項", K, True),
    ("MOJ-KEI-002", "前科照会", "criminal-affairs", "犯罪人名簿取扱要領", K, True),
    ("MOJ-KEI-003", "刑事確定訴訟記録の閲覧請求", "criminal-affairs", "刑事確定訴訟記録法第4条", M, True),
    ("MOJ-KEI-004", "被害者等通知制度の通知希望申出", "criminal-affairs", "被害者等通知制度実施要領", N, True),
    ("MOJ-KEI-005", "被害者参加の申出", "criminal-affairs", "刑事訴訟法第316条の33", M, True),
    ("MOJ-KEI-006", "国際捜査共助の要請", "criminal-affairs", "国際捜査共助等に関する法律第3条", K, False),
    ("MOJ-KEI-007", "逃亡犯罪人引渡しに関する協議", "criminal-affairs", "逃亡犯罪人引渡法第3条", K, False),
    ("MOJ-KEI-008", "検察審査会への資料提供", "criminal-affairs", "検察審査会法第35条", K, True),
    ("MOJ-KEI-009", "押収物還付請求", "criminal-affairs", "刑事訴訟法第123条", M, True),
    ("MOJ-KEI-010", "不起訴記録の閲覧申請", "criminal-affairs", "刑事訴訟法第47条ただし書", M, True),
    ("MOJ-KAN-001", "行政文書開示請求", None, "行政機関の保有する情報の公開に関する法律第4条", N, True),
    ("MOJ-KAN-002", "保有個人情報開示請求", None, "個人情報の保護に関する法律第77条", N, True),
    ("MOJ-KAN-003", "審査請求", None, "行政不服審査法第19条", M, True),
    ("MOJ-KAN-004", "競争参加資格審査申請", "secretariat", "予算決算及び会計令第72条", J, True),
    ("MOJ-KAN-005", "請負契約の締結", "secretariat", "会計法第29条の8", K, True),
    ("MOJ-KAN-006", "支払請求書の提出", "secretariat", "会計法第21条", M, True),
    ("MOJ-KAN-007", "旅費の請求", "secretariat", "国家公務員等の旅費に関する法律第46条", M, False),
    ("MOJ-KAN-008", "扶養控除等申告書の提出", "secretariat", "所得税法第194条", N, False),
    ("MOJ-KAN-009", "被扶養者の申告", "secretariat", "国家公務員共済組合法第2条", M, True),
    ("MOJ-KAN-010", "後援名義使用承認申請", "secretariat", "法務省後援等名義使用承認基準", K, True),
    ("MOJ-KAN-011", "報道機関の取材申込", "secretariat", "法務省広報実施要領", N, True),
    ("MOJ-KAN-012", "公印使用の承認", "secretariat", "法務省公印規程", K, False),
]


def create_demo_procedures(catalogue: ProcedureCatalogue, actor: str = "demo") -> ImportSummary:
    """Put the sample procedures into the catalogue (the demo offices must exist)."""
    return catalogue.save_all([ProcedureFields.checked(code, name, MINISTRY, office, basis, seal, allowed)
                               for code, name, office, basis, seal, allowed in DEMO_PROCEDURES], actor)
