"""Production: every secret and address must come from MAILER_* variables."""

SECRET_KEY = None  # required: MAILER_SECRET_KEY
SHOW_CAPTURED_MAIL = False
SESSION_COOKIE_SECURE = True
