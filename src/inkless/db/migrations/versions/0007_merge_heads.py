"""merge every feature branch into one head, so that later revisions build on one schema

Revision ID: 0007_merge_heads
Revises: the heads of every feature branch
Create Date: 2026-12-04 21:45:00
"""

revision = '0007_merge_heads'
down_revision = ('0002_federation', '0002_traffic', '0002_web', '0003_witness', '0004_admin_console',
                 '0004_docview_page_images', '0004_docview_picker', '0004_docview_route_versions',
                 '0004_lang_form_drafts', '0005_intake_contact_digests', '0005_pickup_threads',
                 '0006_metrics_aggregate_sends')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
