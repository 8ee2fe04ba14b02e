"""The Coinbooks process: settings, database, auth, the ASGI app and the command line."""
