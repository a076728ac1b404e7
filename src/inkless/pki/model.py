"""What the rest of inkless asks of the node PKI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Connection


class CertPurpose(StrEnum):
    """Why a certificate exists; one key pair per purpose and owner."""

    CA = "ca"
    NODE = "node"  # signs audit tree heads, federation requests, directory documents
    TSA = "tsa"  # RFC 3161 time stamps
    OFFICE_ENCRYPTION = "office-encryption"  # RSA, CMS key transport
    OFFICE_SIGNING = "office-signing"  # office seal (角印), envelopes, receipts
    USER_SEAL = "user-seal"  # personal seals (認印, 日付印)


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate issued by the node CA, as stored."""

    id: int
    serial: str
    purpose: CertPurpose
    owner: str
    subject: str
    fingerprint: str  # "SHA256:" + hex, colon-free
    not_before: datetime
    not_after: datetime
    der: bytes
    revoked_at: datetime | None


class CertificateIssuer(Protocol):
    """Issues certificates for offices and users as they are created."""

    def issue_office_certificates(
        self, conn: Connection, office_code: str, office_name: str
    ) -> list[CertificateInfo]:
        """Issue the office's encryption and signing certificates."""

    def issue_user_certificate(
        self, conn: Connection, login: str, display_name: str, office_code: str, office_name: str
    ) -> CertificateInfo:
        """Issue a user's personal seal certificate."""
