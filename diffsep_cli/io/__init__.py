"""Files and streams: audio reading and writing, atomic files, the file pipeline, output
planning and evaluation folders (mixtures)."""
