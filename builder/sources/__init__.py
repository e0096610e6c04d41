"""Parent-sample sources: each yields :class:`~builder.sources.base.ParentRecord` objects."""
