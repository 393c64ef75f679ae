"""The PostgreSQL store: the same parts as ``bot.store``, on a server many
processes and machines can share (``DATABASE_URL=postgresql://…``).

- ``url``     reading and redacting a database URL (no psycopg: ``config`` uses it)
- ``db``      the connection, transactions, ``?`` placeholders, faults → ``StorageError``
- ``schema``  the numbered migrations, the same steps as ``bot.store.schema``
- ``lock``    the sender lock as a session advisory lock
- ``store``   ``PgStore``: ``bot.store.SqlStore`` on ``db``

The parts themselves (campaigns, outbox, …) are not here: they are the SQLite
store's modules, written against ``bot.store.sql``, so both back-ends keep one
copy of every query. Import ``bot.store_pg.store`` to open one; this package's
``__init__`` imports nothing, so reading settings never loads psycopg.
"""
