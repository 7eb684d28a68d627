"""The channel SDK: what a channel implements, and the helpers it is built with."""
