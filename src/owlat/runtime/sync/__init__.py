"""The sync protocol: message types and codec (`protocol`), the per-connection state
machine without I/O (`session`), and the async per-socket worker (`worker`)."""
