"""The SQLite store: schema, migrations, the batched writer and read-only queries."""

from personae.store.database import Database
from personae.store.readonly import connect_readonly, query
from personae.store.writer import Writer

__all__ = ["Database", "Writer", "connect_readonly", "query"]
