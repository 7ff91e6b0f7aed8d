"""indexes for queue and sweep

Partial indexes measured with bench/explain_plans.py on 1,000,000 tickets (bench/RESULTS.md):
- the agent queue's default view (open tickets of an organisation, newest first) and its "by deadline" sort
  read the open tickets of the organisation in order instead of sorting all of them (Métropole: 80,000);
- the SLA sweep reads only tickets whose clock still runs (`sla_met IS NULL`, not paused, with a deadline)
  in due order, instead of walking the breach / at-risk instants of every closed ticket.
The predicates repeat the queries' own conditions (sau/agent/views.py, sau/tickets/sweeps.py) so that
PostgreSQL can prove them; SQLite gets the same indexes without predicates.

Revision ID: a7c3e9d21f04
Revises: 0d47a3c1b2e9
Create Date: 2026-11-22 22:55:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7c3e9d21f04'
down_revision = '0d47a3c1b2e9'
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('nouveau', 'en_cours', 'en_attente')")
CLOCK_RUNNING = sa.text("sla_met IS NULL AND sla_paused IS false AND sla_deadline_at IS NOT NULL")


def upgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_open_recent', ['organisation_id', 'created_at'], unique=False,
                              postgresql_where=OPEN)
        batch_op.create_index('ix_tickets_open_deadline', ['organisation_id', 'sla_deadline_at'], unique=False,
                              postgresql_where=OPEN)
        batch_op.create_index('ix_tickets_sweep_breach', ['sla_breach_at'], unique=False,
                              postgresql_where=CLOCK_RUNNING)
        batch_op.create_index('ix_tickets_sweep_at_risk', ['sla_at_risk_at'], unique=False,
                              postgresql_where=CLOCK_RUNNING)


def downgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_sweep_at_risk', postgresql_where=CLOCK_RUNNING)
        batch_op.drop_index('ix_tickets_sweep_breach', postgresql_where=CLOCK_RUNNING)
        batch_op.drop_index('ix_tickets_open_deadline', postgresql_where=OPEN)
        batch_op.drop_index('ix_tickets_open_recent', postgresql_where=OPEN)
