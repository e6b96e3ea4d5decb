"""Pick articles -> render -> premailer once per segment -> digest.

``compose_digest`` turns the articles not yet in a digest into this week's
digest: one edition per (topics, language) segment of the confirmed readers,
rendered and inlined by premailer once each, and one pending ``Delivery`` row
per reader. The editions hold the placeholders below where each reader's
signed tokens go; ``delivery/`` fills them in on the final text, so nothing
per reader is ever rendered.
"""

from __future__ import annotations

from flask import Blueprint

# Plain alphanumerics, so premailer, lxml, urljoin and quoted-printable leave
# them as they are. Only the links of the footer carry them: the same strings
# inside an article (a hostile feed fishing for readers' tokens) are removed
# when an edition is rendered (see render.seal_placeholders).
UNSUBSCRIBE_TOKEN = "x0UNSUBSCRIBETOKEN0x"  # noqa: S105 - a placeholder, not a secret
PREFERENCES_TOKEN = "x0PREFERENCESTOKEN0x"  # noqa: S105

bp = Blueprint("digest", __name__)

from mailer.digest.lines import wrap_text  # noqa: E402

# The text edition wraps in the template: {{ text|mail_wrap(indent="  ") }}.
bp.add_app_template_filter(wrap_text, "mail_wrap")

from mailer.digest import views  # noqa: E402, F401 - registers the archive routes on bp
from mailer.digest.compose import compose_digest, render_preview, skip_reason  # noqa: E402

__all__ = ["PREFERENCES_TOKEN", "UNSUBSCRIBE_TOKEN", "bp", "compose_digest", "render_preview", "skip_reason"]
