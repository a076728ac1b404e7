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
    return DemoSample(accounts=accounts)
