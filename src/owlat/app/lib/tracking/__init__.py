"""Open and click tracking (reference §8.3, §4): signed links, HTML rewriting, prefetchers."""
