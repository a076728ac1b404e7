"""The demo node: a ministry with three offices and users in every role."""

from __future__ import annotations

from dataclasses import dataclass

from inkless.directory.model import NewAccount
from inkless.directory.service import DirectoryService

DEMO_NODE_ID = "moj"
DEMO_ORGANISATION = "法務省"

DEMO_OFFICES = [
    ("civil-affairs", "民事局", "03-3580-4111"),
    ("criminal-affairs", "刑事局", "03-3580-4112"),
    ("secretariat", "大臣官房", None),
]

# login, office, role, clearance, name
DEMO_USERS = [
    ("tanaka", "civil-affairs", "clerk", 1, "田中 花子"),
    ("sato", "civil-affairs", "approver", 2, "佐藤 一郎"),
    ("suzuki", "civil-affairs", "approver", 3, "鈴木 健二"),
    ("takahashi", "criminal-affairs", "clerk", 2, "高橋 美咲"),
    ("ito", "criminal-affairs", "approver", 3, "伊藤 誠"),
    ("yamada", "secretariat", "admin", 3, "山田 太郎"),
    ("matsumoto", "secretariat", "operator", 3, "松本 直人"),
    ("kimura", "civil-affairs", "integrator", 1, "木村 拓也"),
]

# Readings in katakana, as a clerk types them into a picker.
DEMO_OFFICE_KANA = {
    "civil-affairs": "ミンジキョク", "criminal-affairs": "ケイジキョク", "secretariat": "ダイジンカンボウ",
}
DEMO_USER_KANA = {
    "tanaka": "タナカ ハナコ", "sato": "サトウ イチロウ", "suzuki": "スズキ ケンジ",
    "takahashi": "タカハシ ミサキ", "ito": "イトウ マコト", "yamada": "ヤマダ タロウ",
}
# office, name, kana, fax number: who the offices still fax (their FAX電話帳).
DEMO_FAX_CONTACTS = [
    ("civil-affairs", "大阪法務局 民事行政部", "オオサカホウムキョク ミンジギョウセイブ", "06-6941-0351"),
    ("civil-affairs", "山本司法書士事務所", "ヤマモトシホウショシジムショ", "029-876-5432"),
    ("criminal-affairs", "東京地方検察庁 総務部", "トウキョウチホウケンサツチョウ ソウムブ", "03-3592-5611"),
]


@dataclass(frozen=True)
class DemoSample:
    accounts: list[NewAccount]


def create_demo(directory: DirectoryService) -> DemoSample:
    """Create the sample offices and users; returns the accounts with their first-login secrets."""
    for code, name, fax in DEMO_OFFICES:
        directory.add_office(code, name, fax, actor="demo")
    accounts = [
        directory.add_user(login, office, role, clearance, name, actor="demo")
        for login, office, role, clearance, name in DEMO_USERS
    ]
    for code, kana in DEMO_OFFICE_KANA.items():
        directory.set_kana("office", code, kana, actor="demo")
    for login, kana in DEMO_USER_KANA.items():
        directory.set_kana("user", login, kana, actor="demo")
    for office, name, kana, number in DEMO_FAX_CONTACTS:
        directory.add_fax_contact(office, name, number, kana, actor="demo")
    return DemoSample(accounts=accounts)
