"""Development: the capture SMTP server, the demo feed, a local SQLite file."""

DEBUG = False  # the Werkzeug debugger is opt-in: FLASK_DEBUG=1
SHOW_CAPTURED_MAIL = True
# The bundled demo feed is served by the app itself, on loopback.
FEED_ALLOW_NETWORKS = ["127.0.0.0/8", "::1/128"]
