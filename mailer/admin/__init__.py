"""The operators' dashboard at ``/admin/``, behind a login.

One module per page: ``overview``, ``readers``, ``transfer`` (CSV import and
export, the upload read as it arrives by ``upload``), ``feeds``, ``digests``;
``auth`` guards them all (logins kept on the server by ``sessions``),
``templating`` feeds their templates. ``create_admin`` (used by ``admin create``) lives in
``accounts``.
"""

from __future__ import annotations

# The pages register their routes (and templating its helpers) on ``bp`` when imported.
from mailer.admin import digests, feeds, overview, readers, templating, transfer  # noqa: F401
from mailer.admin.accounts import AdminError, create_admin, set_admin_password
from mailer.admin.auth import current_admin, login_required
from mailer.admin.blueprint import bp

__all__ = ["AdminError", "bp", "create_admin", "current_admin", "login_required", "set_admin_password"]
