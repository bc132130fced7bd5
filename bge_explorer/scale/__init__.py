"""Past one machine: batch embedding on Ray Data (:mod:`~bge_explorer.scale.ray_embed`), documents streamed from
files (:mod:`~bge_explorer.scale.documents`) and exploring an index that already exists
(:mod:`~bge_explorer.scale.connect`)."""
