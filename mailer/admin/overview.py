"""The overview: readers by status, growth over time, the last digests, a running send."""

from __future__ import annotations

from flask import current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import format_date, ngettext
from flask_babel import gettext as _

from mailer.admin.blueprint import bp
from mailer.admin.chart import bar_chart, line_chart
from mailer.admin.growth import DEFAULT_PERIOD, PERIODS, GrowthPoint, growth_series
from mailer.admin.sending import get_sender
from mailer.admin.stats import latest_digests, reader_counts, running_digests
from mailer.db import get_session
from mailer.models import utcnow


def _label(point: GrowthPoint, period: str) -> str:
    """The axis label of a bucket: its first day, or its month."""
    if PERIODS[period][1] == "month":
        return str(format_date(point.start, "MMM yyyy"))
    return str(format_date(point.start, "d MMM"))


def period_names() -> dict[str, str]:
    """The periods the chart offers, with their names."""
    return {"30d": _("30 days"), "26w": _("26 weeks"), "12m": _("12 months")}


@bp.get("/")
def overview() -> ResponseReturnValue:
    """The dashboard's front page."""
    session = get_session()
    period = request.args.get("period", DEFAULT_PERIOD)
    if period not in PERIODS:
        period = DEFAULT_PERIOD
    series = growth_series(session, utcnow(), current_app.config["TIMEZONE"], period)
    labels = [_label(p, period) for p in series]
    active_titles = [
        ngettext("%(when)s: %(num)d reader", "%(when)s: %(num)d readers", p.active, when=label)
        for label, p in zip(labels, series, strict=True)
    ]
    flow_titles = [
        _("%(when)s: %(joined)s joined, %(left)s left", when=label, joined=p.joined, left=p.left)
        for label, p in zip(labels, series, strict=True)
    ]
    return render_template(
        "pages/admin/overview.html",
        counts=reader_counts(session),
        period=period,
        periods=period_names(),
        series=list(zip(labels, series, strict=True)),
        readers_chart=line_chart([p.active for p in series], labels, active_titles),
        flow_chart=bar_chart([(p.joined, p.left) for p in series], labels, flow_titles),
        digests=latest_digests(session),
        running=running_digests(session),
        sender=get_sender(current_app._get_current_object()),  # type: ignore[attr-defined]
    )
