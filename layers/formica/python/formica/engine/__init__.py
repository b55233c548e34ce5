"""The walk: exit-code routing, retries, polling and what to do next. Pure: no AWS here."""
