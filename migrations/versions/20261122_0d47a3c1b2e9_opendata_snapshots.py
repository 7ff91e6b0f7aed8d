"""open data snapshots

Revision ID: 0d47a3c1b2e9
Revises: 4873ff0fd5c5
Create Date: 2026-11-22 22:55:00

"""
from alembic import op
import sqlalchemy as sa
import sau.modelbase


# revision identifiers, used by Alembic.
revision = '0d47a3c1b2e9'
down_revision = '4873ff0fd5c5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('opendata_snapshots',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('generated_at', sau.modelbase.UTCDateTime(timezone=True), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('csv', sa.Text(), nullable=False),
    sa.Column('json', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_opendata_snapshots'))
    )


def downgrade():
    op.drop_table('opendata_snapshots')
