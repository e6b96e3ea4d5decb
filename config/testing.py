"""Testing: the test fixtures set the database, SMTP server and feeds."""

TESTING = True
SHOW_CAPTURED_MAIL = True
# Tests post forms without a CSRF token unless a test is about CSRF.
WTF_CSRF_ENABLED = False
RATELIMIT_ENABLED = False
