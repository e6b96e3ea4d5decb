"""Defaults for every environment.

Loaded first; then the file named by ``MAILER_ENV`` (``development.py``,
``production.py`` or ``testing.py``) overrides some of them; then the
``MAILER_*`` environment variables override both (see ``mailer/config.py``).
Names here are Flask config keys: the variable ``MAILER_FOO`` sets ``FOO``.
"""

# The database: None means a SQLite file under the instance folder.
DATABASE_URL = None
# None: MAILER_SECRET_KEY is required in production; development and testing
# make a random key once per instance folder (mailer/config.py, instance_key).
SECRET_KEY = None
BASE_URL = "http://127.0.0.1:5000"
# None means the built-in capture server (development) or an error (production).
SMTP_URL = None
FROM = "Notizie Tech <newsletter@localhost>"
# Feed URLs; None means the bundled demo feed served by the app in development.
FEEDS = None
DIGEST_SCHEDULE = "0 8 * * mon"
FEED_INTERVAL = 60
TIMEZONE = "Europe/Rome"
LOCALE = "it"
# Four persistent connections keep a local MTA busy without tripping the
# per-client connection limits common on relays (Postfix defaults to 50).
SMTP_CONNECTIONS = 4
SEND_RATE = 0.0
CORS_ORIGINS: list[str] = []
DKIM_DOMAIN = None
DKIM_SELECTOR = None
DKIM_KEY_FILE = None
SIGNUP_LIMIT = "10/minute;100/hour"
# Networks that feed URLs may reach although they are not public (loopback,
# private, link-local...): CIDR text. Empty: feeds reach public addresses only.
FEED_ALLOW_NETWORKS: list[str] = []
# Where the rate-limit counters live: "database" (shared by every worker),
# "memory" (per process) or a limits storage URI such as redis://host:6379.
RATELIMIT_STORAGE = "database"
# Off only in tests that do not count requests (MAILER_ENV=testing keeps it on).
RATELIMIT_ENABLED = True
# The development mail viewer (config/development.py turns it on).
SHOW_CAPTURED_MAIL = False

# Beyond the contract: settings with no MAILER_ variable of their own yet.
SITE_NAME = "Notizie Tech"
SITE_URL = "https://www.example.it"
LOGO_URL = None
POSTAL_ADDRESS = "Notizie Tech S.r.l., Via dell'Esempio 1, 00100 Roma (RM)"
PRIVACY_URL = "/privacy"
# Where the capture SMTP server listens, and the Maildir it writes to.
CAPTURE_SMTP_HOST = "127.0.0.1"
CAPTURE_SMTP_PORT = 2525
CAPTURE_MAILDIR = None  # None: instance/captured-mail
# Envelope sender (Return-Path) for bounces; None: the address in FROM.
BOUNCE_ADDRESS = None
# A Maildir where the bounce address's mail lands (Postfix, Dovecot): the
# scheduler reads its bounce reports every few minutes. None: not read.
BOUNCE_MAILDIR = None
BOUNCE_MINUTES = 5
# Days a read bounce or complaint mail stays in BOUNCE_MAILDIR's cur/ (from its
# arrival) before the scheduler's bounces job deletes it (docs/deploy.md).
BOUNCE_RETENTION_DAYS = 30
# Days a transactional mail (confirmation, "my data" link: the address and its links)
# stays in the outbox table once sent, or since it was queued if it never left; the
# nightly purge deletes it then (docs/deploy.md). The hourly caps read only the last hour.
OUTBOX_RETENTION_DAYS = 7
# List-Id of the digests (RFC 2919); None: "SITE_NAME" <digest.the-domain-of-FROM>.
LIST_ID = None
# Topics readers can choose; feed categories are matched against the aliases.
TOPICS = {
    "ai": {"it": "Intelligenza artificiale", "en": "Artificial intelligence",
           "aliases": ["ai", "intelligenza artificiale", "ia", "machine learning", "llm", "artificial intelligence"]},
    "security": {"it": "Cybersecurity", "en": "Cybersecurity",
                 "aliases": ["cybersecurity", "sicurezza", "security", "malware", "privacy"]},
    "web": {"it": "Web", "en": "Web",
            "aliases": ["web", "web development", "sviluppo web", "javascript", "css", "html", "browser"]},
    "mobile": {"it": "Mobile", "en": "Mobile",
               "aliases": ["mobile", "smartphone", "android", "ios", "app"]},
    "hardware": {"it": "Hardware", "en": "Hardware",
                 "aliases": ["hardware", "cpu", "gpu", "processori", "chip"]},
    "other": {"it": "Altro", "en": "Other", "aliases": []},
}
FALLBACK_TOPIC = "other"
# Unconfirmed signups older than this are purged, and their links stop working.
PURGE_UNCONFIRMED_DAYS = 7
# Articles a new feed's first fetch keeps: only those of the last N days.
FIRST_FETCH_DAYS = 7
FEED_FAILURE_ALERT = 5
FEED_MAX_BYTES = 10 * 1024 * 1024
FEED_TIMEOUT = 30.0  # seconds: the whole budget of one feed's download, redirects included
FEED_CONCURRENCY = 4  # feeds downloaded at the same time by one poll
FEED_SUMMARY_CHARS = 500  # visible characters of an article's summary, cut at a word boundary
DIGEST_MIN_ARTICLES = 1
DIGEST_MAX_ARTICLES = 30
# The digest's subject per language: {date} is the send date ("25 novembre
# 2026"), {site} is SITE_NAME. A language missing here gets the English one.
DIGEST_SUBJECT = {"it": "Le notizie della settimana – {date}", "en": "This week's news – {date}"}
# Gmail clips a message whose HTML passes 102 KB: the digest stays under this
# (with room left for the reader's tokens); beyond it, fewer articles and a warning.
DIGEST_MAX_HTML_BYTES = 100_000
# Temporary failures are retried for this long before a delivery fails for good.
DELIVERY_GIVE_UP_HOURS = 72
# Retries of a deferred delivery: 30 s, then doubling, at most 6 hours apart.
DELIVERY_BACKOFF_SECONDS = 30
DELIVERY_BACKOFF_MAX_SECONDS = 6 * 3600
# A run waits for the retries due this soon after it started (greylisting
# usually lets the second try in); later ones are left to later runs.
DELIVERY_RETRY_WITHIN_RUN_SECONDS = 90
# Deliveries a sender claims at once, and how long its claim holds unless
# renewed (a sender that died releases its rows when the lease runs out).
DELIVERY_BATCH_SIZE = 500
DELIVERY_LEASE_SECONDS = 120
# Seconds an SMTP command may take before the connection counts as lost.
SMTP_TIMEOUT = 60
# An address for RFC 2369 mailto: unsubscribes next to the one-click link;
# None: the link alone (set it only if mail to it is really processed).
UNSUBSCRIBE_MAILTO = None
# Confirmation mails: per address and overall. Past the hourly cap a mail
# waits (oldest first), unless it would wait longer than CONFIRM_MAX_WAIT_HOURS;
# each source network (IPv4 /24, IPv6 /48) may queue 1/20 of the cap an hour,
# its mails past that are dropped (mailer/subscriptions/budget.py).
CONFIRM_MAILS_PER_HOUR = 500
# "My data" links (consent record, download, erasure), mailed on request from
# the preferences page: how long one works, and how many a reader may ask for
# (Flask-Limiter notation; past it, the page answers the same and mails nothing).
DATA_LINK_MINUTES = 60
DATA_LINK_LIMIT = "3/hour;10/day"
CONFIRM_MAILS_PER_NETWORK_PER_HOUR = 25
CONFIRM_MAX_WAIT_HOURS = 24
# The signup form refuses answers sent sooner than this after the page loaded
# (bots post at once; people take a few seconds to type an address).
SIGNUP_MIN_SECONDS = 3
# Failed admin logins allowed per IP address, and per account from any address
# (Flask-Limiter notation).
ADMIN_LOGIN_LIMIT = "5/minute;20/hour"
ADMIN_ACCOUNT_LOGIN_LIMIT = "10/minute;50/hour"
# An admin login lasts this long, then the admin logs in again.
ADMIN_SESSION_HOURS = 12
# Request bodies (Flask's own setting): the most any form, API call or webhook
# may send. A bigger one is refused with 413 before it is read (a declared
# Content-Length) or as soon as it passes the cap (a chunked body). Every
# form of the app sends a few KB.
MAX_CONTENT_LENGTH = 256 * 1024
# The one exception: the admin's CSV import (a logged-in admin), read as it
# arrives, row by row, never held whole in memory or written to disk.
ADMIN_IMPORT_MAX_BYTES = 50 * 1024 * 1024
LOG_JSON = False
# The scheduler: a digest or purge slot missed while no scheduler ran (or
# whose run failed) still fires this many hours late, once; later, it waits
# for its next slot. Deferred deliveries and missed slots are looked at
# every SCHEDULER_RETRY_MINUTES.
SCHEDULER_GRACE_HOURS = 12
SCHEDULER_RETRY_MINUTES = 5
# The scheduler's passes over what a web process queued but left behind:
# signups to apply, transactional mail (confirmations) to send.
SIGNUP_QUEUE_MINUTES = 1
OUTBOX_MINUTES = 1
# Proxies in front of the app that set X-Forwarded-For/-Proto/-Host (nginx:
# 1). 0 trusts none, so a client cannot fake its address (MAILER_PROXY_FIX_HOPS).
PROXY_FIX_HOPS = 0
