"""The 3D annotator: a Flask blueprint and Socket.IO namespace over unem.meshes.

The annotator lands with its own issue; until then this package only marks its room
in the layout (DESIGN.md §2).
"""
