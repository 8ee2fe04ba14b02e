"""The gift flow: streams, the gift and feature catalog, gifts (group-committed in batches),
feature unlocks, holds and their release, and the notices the live gift feed reads."""
