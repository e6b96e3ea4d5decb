"""Testing: what the test suite's own processes run as (``MAILER_ENV=testing``).

It relaxes nothing: CSRF, rate limits and the production-grade checks stay as
they are, and the captured-mail viewer is off. The suite's fixtures switch off
what a test does not need (``tests/conftest.py``, ``make_app``) themselves, so
an app started with ``MAILER_ENV=testing`` is no weaker than development.
"""

TESTING = True
