"""Dojo, the multi-user proofreader: a Flask blueprint and Socket.IO namespace over unem.proofread.

The proofreader lands with its own issue; until then this package only marks its room
in the layout (DESIGN.md §2).
"""
