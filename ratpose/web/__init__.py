"""``ratpose serve``: a read-only web app over the shared database (Starlette + Jinja2 templates)."""
