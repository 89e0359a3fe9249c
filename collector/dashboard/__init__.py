"""The NOC dashboard: server-rendered pages behind a login, refreshed in place.

``web`` holds what every page shares (the login cookie, the CSRF token of forms, rendering
a whole page or only its live part); each area has its own module with its routes.
"""
