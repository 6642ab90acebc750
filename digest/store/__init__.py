"""The store: SQLAlchemy models, the engine and session factory, and the Alembic migrations
runner (``digest init``). Other stages read and write rows through their own modules; this
package only defines them.

May import: config.
"""
