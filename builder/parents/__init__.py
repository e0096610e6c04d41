"""Parent-sample sources: each yields :class:`~builder.parents.base.ParentRecord` objects."""
