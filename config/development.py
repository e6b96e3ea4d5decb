"""Development: the capture SMTP server, the demo feed, a local SQLite file."""

DEBUG = False  # the Werkzeug debugger is opt-in: FLASK_DEBUG=1
SHOW_CAPTURED_MAIL = True
