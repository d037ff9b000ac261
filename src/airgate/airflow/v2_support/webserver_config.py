"""The web server configuration airgate writes into an Airflow 2 environment."""

from airflow.configuration import conf
from flask_appbuilder.security.manager import AUTH_DB

SQLALCHEMY_DATABASE_URI = conf.get_mandatory_value("database", "SQL_ALCHEMY_CONN")
WTF_CSRF_ENABLED = True
# No user has a password anyone knows: browsers sign in through airgate's web login
# (CreateWebLoginToken), callers of /api/v1 with airgate's tokens.
AUTH_TYPE = AUTH_DB
AUTH_USER_REGISTRATION = False
AUTH_ROLE_PUBLIC = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
