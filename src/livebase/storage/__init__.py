"""Storage layer: SQLAlchemy Core over SQLite (aiosqlite) and PostgreSQL (asyncpg)."""
