"""Import every model so that metadata (Alembic, tests) sees the whole schema."""
from sau.admin.models import AuditEvent  # noqa: F401
from sau.api.idempotency import IdempotencyRecord  # noqa: F401
from sau.auth.models import Identity, Membership, User  # noqa: F401
from sau.faq.models import FaqEntry  # noqa: F401
from sau.incidents.models import SecurityAlert  # noqa: F401
from sau.notify.models import DeliveryAttempt, Notification, NotificationFanout, NotificationPreference, WebhookEndpoint  # noqa: F401
from sau.orgs.models import CalendarClosure, Category, Organisation, School, SchoolAdministrator, Service, Subscription  # noqa: F401
from sau.privacy.access_log import AccessLogEntry  # noqa: F401
from sau.privacy.models import AccountDeletionWarning, DeletedAccount, ErasedAccount, TicketAnonymisation  # noqa: F401
from sau.refdata import ReferenceDataVersion  # noqa: F401
from sau.reports.models import OpenDataSnapshot  # noqa: F401
from sau.routing.models import RoutingRule  # noqa: F401
from sau.status.models import Maintenance, Outage  # noqa: F401
from sau.tickets.models import Attachment, Comment, ReferenceCounter, SlaAlert, Ticket, TicketEvent  # noqa: F401
