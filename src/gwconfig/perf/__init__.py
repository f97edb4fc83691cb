"""Performance helpers: forked work shared through a pipe, pausing the garbage collector."""
