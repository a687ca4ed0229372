"""WSGI entry for gunicorn behind nginx: `gunicorn claimapp.wsgi:app`."""

from claimapp.web import create_app

app = create_app()
