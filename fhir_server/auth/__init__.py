"""OAuth 2.0 for backend systems (SMART Backend Services) and access control.

Authentication (this package's client registry, token endpoint, scopes and grants) decides *who* is
calling and *what* its token allows; enforcement (``policy``, ``enforce``) compiles scopes and the
client's data policy into every query; ``audit`` records each access.
"""
