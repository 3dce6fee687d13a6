"""Alembic environment and revision scripts of LinkFlow's schema.

Run them through `linkflow.store.migrate` (or ``linkflow migrate``), which
builds the Alembic configuration in code; there is no ``alembic.ini``.
Revision files are named ``NNNN_<slug>.py`` with revision ids ``NNNN``.
"""
